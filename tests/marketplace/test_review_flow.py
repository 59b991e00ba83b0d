"""End to end: a view enqueues on commit, a real worker on real Redis writes to PostgreSQL."""

import json
from decimal import Decimal

import pytest

from marketplace.models import ContractorProfile, Order, OrderStatus, Review, User
from tests.conftest import drain


def make_completed_order() -> tuple[User, User, Order]:
    client = User.objects.create_user("client@example.test", "pw-client-123")
    pro = User.objects.create_user("pro@example.test", "pw-pro-123", is_contractor=True)
    ContractorProfile.objects.create(user=pro, business_name="Pro Plumbing", city="Toronto",
                                     province="ON")
    order = Order.objects.create(client=client, contractor=pro, title="Fix sink",
                                 status=OrderStatus.COMPLETED, subtotal_cents=10_000,
                                 tax_cents=1_300, total_cents=11_300, province="ON")
    return client, pro, order


@pytest.mark.django_db(transaction=True)
def test_review_view_updates_rating_through_a_real_worker(client, broker, worker):
    reviewer, pro, order = make_completed_order()
    earlier = Order.objects.create(client=reviewer, contractor=pro, title="Earlier",
                                   status=OrderStatus.COMPLETED, province="ON")
    Review.objects.create(order=earlier, author=reviewer, subject=pro, rating=4)
    client.force_login(reviewer)

    response = client.post(f"/orders/{order.pk}/review", data=json.dumps({"rating": 5}),
                           content_type="application/json")
    assert response.status_code == 201
    drain(broker, worker)

    profile = ContractorProfile.objects.get(user=pro)
    assert profile.rating_count == 2
    assert profile.rating_average == Decimal("4.50")
    assert profile.rating_updated_at is not None


@pytest.mark.django_db(transaction=True)
def test_rejected_review_enqueues_nothing(client, broker):
    reviewer, pro, order = make_completed_order()
    order.status = OrderStatus.IN_PROGRESS
    order.save()
    client.force_login(reviewer)

    response = client.post(f"/orders/{order.pk}/review", data=json.dumps({"rating": 5}),
                           content_type="application/json")

    assert response.status_code == 400
    assert broker.do_qsize("analytics") == 0  # nothing queued, nor delayed (debounced)
    assert not Review.objects.filter(order=order).exists()


@pytest.mark.django_db
def test_malformed_review_is_a_400(client):
    reviewer, _, order = make_completed_order()
    client.force_login(reviewer)
    response = client.post(f"/orders/{order.pk}/review", data="not json",
                           content_type="application/json")
    assert response.status_code == 400
