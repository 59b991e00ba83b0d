"""Writes to marketplace records. Views, admin actions, commands and actors call these."""

from decimal import ROUND_HALF_UP, Decimal

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Avg, Count
from django.utils import timezone

from audit.services import audit_log_record
from jobs.enqueue import enqueue_on_commit
from marketplace.models import (
    ContractorProfile,
    Order,
    OrderStatus,
    RefreshToken,
    Review,
    User,
    UserSession,
)
from marketplace.search.index import search_index_profile_changed

#: The profile fields a contractor (or staff for them) edits; the rest is derived.
PROFILE_EDITABLE_FIELDS = frozenset({
    "business_name", "description", "trade_categories", "city", "province", "latitude",
    "longitude", "is_visible"})


def user_sessions_revoke(*, user: User) -> dict[str, int]:
    """End every app session of ``user`` and revoke their refresh tokens (a password was
    reset: whoever held the old one must sign in again). Returns the counts."""
    sessions = UserSession.objects.filter(user=user, is_active=True).update(is_active=False)
    refresh_tokens = RefreshToken.objects.filter(user=user, revoked=False).update(
        revoked=True, is_active=False)
    return {"sessions_revoked": sessions, "refresh_tokens_revoked": refresh_tokens}


@transaction.atomic
def review_create(*, order: Order, author: User, rating: int, text: str = "") -> Review:
    """The client reviews the contractor of a completed order.

    The contractor's rating is recalculated by a background job after commit.

    Raises:
      PermissionDenied: ``author`` is not the order's client.
      ValidationError: the order is not completed, has no contractor, the rating is not
        1–5, or the author already reviewed it.
    """
    if order.client_id != author.pk:
        raise PermissionDenied("Only the order's client can review it.")
    if order.status != OrderStatus.COMPLETED or order.contractor_id is None:
        raise ValidationError("Only a completed order with a contractor can be reviewed.")
    if not 1 <= rating <= 5:
        raise ValidationError("The rating must be between 1 and 5.")
    if Review.objects.filter(order=order, author=author).exists():
        raise ValidationError("This order has already been reviewed.")
    review = Review.objects.create(
        order=order, author=author, subject_id=order.contractor_id, rating=rating, text=text
    )
    audit_log_record(action="review.created", resource=review, actor=author,
                     metadata={"order_id": order.pk, "rating": rating})
    from marketplace.tasks import contractor_rating_recalculate

    enqueue_on_commit(contractor_rating_recalculate, order.contractor_id)
    return review


def contractor_rating_recalculate(*, contractor_id: int) -> ContractorProfile | None:
    """Recompute a contractor's average rating and count from their reviews.

    Idempotent: it derives the result from the reviews alone. Returns ``None`` when the
    contractor has no profile (deleted since the job was queued).
    """
    with transaction.atomic():
        profile = (
            ContractorProfile.objects.select_for_update()
            .filter(user_id=contractor_id)
            .first()
        )
        if profile is None:
            return None
        stats = Review.objects.filter(subject_id=contractor_id).aggregate(
            average=Avg("rating"), count=Count("id")
        )
        average = Decimal(str(stats["average"] or 0)).quantize(
            Decimal("0.01"), rounding=ROUND_HALF_UP
        )
        profile.rating_average = average
        profile.rating_count = stats["count"]
        profile.rating_updated_at = timezone.now()
        profile.save(update_fields=["rating_average", "rating_count", "rating_updated_at"])
        return profile


@transaction.atomic
def contractor_profile_update(*, profile: ContractorProfile, actor: User | None = None,
                              **changes) -> ContractorProfile:
    """Change fields of ``profile`` (names in :data:`PROFILE_EDITABLE_FIELDS`), audited;
    its search entry is rebuilt after commit (debounced: a burst of edits, one rebuild).

    Raises:
      ValueError: a field that is not editable.
      ValidationError: a value the model refuses; nothing is saved.
    """
    unknown = set(changes) - PROFILE_EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"Not editable profile fields: {sorted(unknown)}")
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.full_clean(exclude=["user"])
    profile.save(update_fields=sorted(changes))
    audit_log_record(action="contractor_profile.updated", resource=profile, actor=actor,
                     metadata={"fields": sorted(changes)})
    search_index_profile_changed(profile_id=profile.pk)
    return profile
