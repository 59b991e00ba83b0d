"""Reviews, both ways: a completed order's client reviews its contractor, and its
contractor reviews its client. Written, edited and removed here only; each change is
audited (ids and ratings, never the text) and asks for the subject's rating to be
recalculated after commit (debounced: ``marketplace.ratings``).

A removed review is deleted, not flagged: it then stops counting everywhere (ratings,
statistics, search) with no filter for any reader to forget, its words go as its author or
staff asked, and the audit entry keeps who removed it, when, and its order and rating.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import Order, OrderStatus, Review, ReviewSubject, User
from marketplace.ratings import rating_recalculate_later


def _check_rating(rating: int) -> None:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise ValidationError("The rating must be a whole number from 1 to 5.")


@transaction.atomic
def review_create(*, order: Order, author: User, rating: int, text: str = "") -> Review:
    """``author`` reviews the other side of completed ``order``: its client reviews the
    contractor, its contractor reviews the client.

    Raises:
      PermissionDenied: ``author`` is neither the order's client nor its contractor.
      ValidationError: the order is not completed or has no contractor, the rating is not
        1–5, or the author already reviewed it.
    """
    if order.client_id == author.pk:
        subject_id, role = order.contractor_id, ReviewSubject.CONTRACTOR
    elif order.contractor_id is not None and order.contractor_id == author.pk:
        subject_id, role = order.client_id, ReviewSubject.CLIENT
    else:
        raise PermissionDenied("Only the order's client or contractor can review it.")
    if order.status != OrderStatus.COMPLETED or order.contractor_id is None:
        raise ValidationError("Only a completed order with a contractor can be reviewed.")
    _check_rating(rating)
    if Review.objects.filter(order=order, author=author).exists():
        raise ValidationError("This order has already been reviewed.")
    try:
        with transaction.atomic():
            review = Review.objects.create(order=order, author=author, subject_id=subject_id,
                                           subject_role=role, rating=rating, text=text)
    except IntegrityError as exc:  # the same author, at the same moment, in another request
        raise ValidationError("This order has already been reviewed.") from exc
    audit_log_record(action="review.created", resource=review, actor=author,
                     metadata={"order_id": order.pk, "subject_role": role, "rating": rating})
    rating_recalculate_later(subject_id=subject_id, role=role)
    return review


@transaction.atomic
def review_update(*, review: Review, author: User, rating: int | None = None,
                  text: str | None = None) -> Review:
    """The author changes their review's rating and/or text (``None``: unchanged). A new
    rating asks for the subject's recalculation; a text edit alone does not.

    Raises:
      PermissionDenied: ``author`` did not write the review.
      ValidationError: the rating is not 1–5.
      Review.DoesNotExist: the review was removed meanwhile.
    """
    if review.author_id != author.pk:
        raise PermissionDenied("Only the review's author can edit it.")
    if rating is not None:
        _check_rating(rating)
    review = Review.objects.select_for_update().get(pk=review.pk)
    before = review.rating
    rating_changed = rating is not None and rating != review.rating
    text_changed = text is not None and text != review.text
    if not (rating_changed or text_changed):
        return review
    if rating_changed:
        review.rating = rating
    if text_changed:
        review.text = text
    review.edited_at = timezone.now()
    review.save(update_fields=["rating", "text", "edited_at"])
    audit_log_record(action="review.updated", resource=review, actor=author,
                     metadata={"order_id": review.order_id, "subject_role": review.subject_role,
                               "rating_before": before, "rating": review.rating,
                               "text_changed": text_changed})
    if rating_changed:
        rating_recalculate_later(subject_id=review.subject_id, role=review.subject_role)
    return review


@transaction.atomic
def review_remove(*, review: Review, by: User) -> None:
    """Remove a review (its author, or staff): deleted, audited, and the subject's rating
    recalculated. Removing a review already gone does nothing.

    Raises:
      PermissionDenied: ``by`` is neither the author nor active staff.
    """
    if review.author_id != by.pk and not (by.is_staff and by.is_active):
        raise PermissionDenied("Only the review's author or staff can remove it.")
    locked = Review.objects.select_for_update().filter(pk=review.pk).first()
    if locked is None:
        return
    audit_log_record(action="review.removed", resource=locked, actor=by,
                     metadata={"order_id": locked.order_id, "subject_role": locked.subject_role,
                               "rating": locked.rating,
                               "by": "author" if locked.author_id == by.pk else "staff"})
    locked.delete()
    rating_recalculate_later(subject_id=locked.subject_id, role=locked.subject_role)
