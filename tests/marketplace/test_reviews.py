"""Reviews both ways, edited and removed (marketplace.reviews): who may, what is audited
(never the text), and the subject's rating recalculated through a real worker."""

import json
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse

from audit.models import AuditLog
from marketplace.models import (
    ClientRating,
    ContractorProfile,
    Order,
    OrderStatus,
    Review,
    ReviewSubject,
)
from marketplace.reviews import review_create, review_remove, review_update
from marketplace.services import order_accept
from tests.conftest import drain
from tests.marketplace.helpers import make_profile, make_user, orders, prior

TEXT = "Left the site spotless, would hire again"


@pytest.fixture
def job(db):
    """A completed order: (its contractor's profile, its client, the order)."""
    prior(contractor="4.0000", client="4.0000")
    profile = make_profile()
    order = orders(profile.user, 1)[0]
    return profile, order.client, order


def audit_entries(action: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(action=action).order_by("pk"))


@pytest.mark.django_db(transaction=True)
def test_the_contractor_reviews_the_client_and_the_client_is_rated(job, broker, worker):
    profile, client, order = job

    review = review_create(order=order, author=profile.user, rating=2, text=TEXT)
    drain(broker, worker)

    assert (review.subject_id, review.subject_role) == (client.pk, ReviewSubject.CLIENT)
    rating = ClientRating.objects.get(user=client)
    assert (rating.rating_count, rating.rating_average, rating.rating_bayesian) == (
        1, Decimal("2.00"), Decimal("3.8182"))  # (40 + 2) / 11
    # the contractor's own figures are untouched by a review they wrote
    assert ContractorProfile.objects.get(pk=profile.pk).rating_count == 0
    [entry] = audit_entries("review.created")
    assert entry.metadata == {"order_id": order.pk, "subject_role": "client", "rating": 2}
    assert TEXT not in json.dumps(entry.metadata)


@pytest.mark.django_db
def test_each_side_reviews_an_order_once_and_nobody_else_can(job):
    profile, client, order = job
    review_create(order=order, author=client, rating=5)
    review_create(order=order, author=profile.user, rating=4)
    with pytest.raises(ValidationError):
        review_create(order=order, author=client, rating=3)
    with pytest.raises(PermissionDenied):
        review_create(order=order, author=make_user(), rating=3)
    with pytest.raises(ValidationError):
        review_create(order=orders(profile.user, 1, status=OrderStatus.IN_PROGRESS)[0],
                      author=profile.user, rating=3)
    assert sorted(Review.objects.values_list("subject_role", flat=True)) == [
        "client", "contractor"]


@pytest.mark.django_db(transaction=True)
def test_an_edited_rating_is_recalculated_and_audited_without_the_text(job, broker, worker):
    profile, client, order = job
    review = review_create(order=order, author=client, rating=5, text=TEXT)
    drain(broker, worker)

    review_update(review=review, author=client, rating=2, text="Changed my mind")
    drain(broker, worker)

    profile.refresh_from_db()
    assert (profile.rating_count, profile.rating_average, profile.rating_bayesian) == (
        1, Decimal("2.00"), Decimal("3.8182"))
    review.refresh_from_db()
    assert review.edited_at is not None and review.text == "Changed my mind"
    [entry] = audit_entries("review.updated")
    assert entry.metadata == {"order_id": order.pk, "subject_role": "contractor",
                              "rating_before": 5, "rating": 2, "text_changed": True}


@pytest.mark.django_db(transaction=True)
def test_a_text_edit_alone_queues_no_recalculation(job, broker, redis_client):
    profile, client, order = job
    review = Review.objects.create(order=order, author=client, subject=profile.user, rating=4)

    review_update(review=review, author=client, text="Better words")

    assert redis_client.keys("*debounce*") == []
    assert broker.do_qsize("analytics") == 0


@pytest.mark.django_db
def test_only_the_author_edits_and_the_rating_stays_one_to_five(job):
    profile, client, order = job
    review = review_create(order=order, author=client, rating=5)
    with pytest.raises(PermissionDenied):
        review_update(review=review, author=profile.user, rating=1)
    with pytest.raises(ValidationError):
        review_update(review=review, author=client, rating=6)
    assert Review.objects.get(pk=review.pk).rating == 5
    assert audit_entries("review.updated") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("remover", ["author", "staff"])
def test_a_removed_review_stops_counting(job, broker, worker, remover, django_user_model):
    profile, client, order = job
    other = orders(profile.user, 1)[0]
    review_create(order=other, author=other.client, rating=5)
    review = review_create(order=order, author=client, rating=1, text=TEXT)
    drain(broker, worker)
    assert ContractorProfile.objects.get(pk=profile.pk).rating_count == 2

    by = client if remover == "author" else django_user_model.objects.create_user(
        "moderator@example.test", "pw-staff-123", is_staff=True)
    review_remove(review=review, by=by)
    drain(broker, worker)

    profile.refresh_from_db()
    assert (profile.rating_count, profile.rating_average) == (1, Decimal("5.00"))
    assert not Review.objects.filter(pk=review.pk).exists()
    [entry] = audit_entries("review.removed")
    assert (entry.resource_id, entry.actor_id) == (str(review.pk), by.pk)
    assert entry.metadata == {"order_id": order.pk, "subject_role": "contractor",
                              "rating": 1, "by": remover}


@pytest.mark.django_db
def test_nobody_else_removes_a_review(job):
    profile, client, order = job
    review = review_create(order=order, author=client, rating=1)
    for outsider in (profile.user, make_user()):
        with pytest.raises(PermissionDenied):
            review_remove(review=review, by=outsider)
    assert Review.objects.filter(pk=review.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_review_endpoints_edit_and_remove(job, client, broker, worker):
    profile, reviewer, order = job
    review = review_create(order=order, author=reviewer, rating=5)
    url = reverse("review-change", args=[review.pk])
    patch = dict(content_type="application/json")

    client.force_login(profile.user)
    assert client.patch(url, json.dumps({"rating": 1}), **patch).status_code == 403
    assert client.delete(url).status_code == 403

    client.force_login(reviewer)
    assert client.patch(url, json.dumps({"rating": 0}), **patch).status_code == 400
    assert client.patch(url, "[]", **patch).status_code == 400
    assert client.patch(url, json.dumps({"text": None, "rating": None}), **patch).json() == {
        "id": review.pk, "rating": 5}  # nothing to change
    create = reverse("order-review-create", args=[orders(profile.user, 1,
                                                         client=reviewer)[0].pk])
    assert client.post(create, json.dumps({"rating": 4, "text": None}),
                       **patch).status_code == 400
    response = client.patch(url, json.dumps({"rating": 3}), **patch)
    assert (response.status_code, response.json()) == (200, {"id": review.pk, "rating": 3})
    assert client.delete(url).status_code == 204
    assert client.delete(url).status_code == 404
    drain(broker, worker)
    assert ContractorProfile.objects.get(pk=profile.pk).rating_count == 0


@pytest.mark.django_db
def test_a_contractor_accepts_an_open_order_once():
    profile = make_profile()
    order = Order.objects.create(client=make_user(), title="Fix roof", province="ON")

    accepted = order_accept(order=order, contractor=profile.user)

    assert (accepted.status, accepted.contractor_id) == (OrderStatus.ACCEPTED, profile.user_id)
    assert accepted.accepted_at is not None
    with pytest.raises(ValidationError):
        order_accept(order=order, contractor=make_profile().user)
    with pytest.raises(PermissionDenied):
        order_accept(order=Order.objects.create(client=make_user(), title="x", province="ON"),
                     contractor=make_user())
    assert [e.resource_id for e in audit_entries("order.accepted")] == [str(order.pk)]
