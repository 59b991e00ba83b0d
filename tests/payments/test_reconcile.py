"""Reconciliation against a local HTTP server speaking Stripe's API (the real stripe
library calls it): a missed event is fetched and processed by the same handler; a payment
left pending is asked of Stripe and fixed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from payments.models import EventSource, EventStatus, Payment, PaymentStatus, StripeEvent
from payments.services.events import stripe_event_process
from payments.services.reconcile import payments_reconcile
from tests.payments.conftest import event, intent, post_event

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_api(settings, httpserver):
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    return httpserver


def events_page(*events, has_more=False):
    return {"object": "list", "url": "/v1/events", "has_more": has_more,
            "data": list(events)}


def test_a_missed_event_is_fetched_and_processed_through_its_handler(stripe_api, order,
                                                                      client):
    delivered = event("payment_intent.created", intent("pi_1", order=order,
                                                        status="requires_payment_method"))
    missed = event("payment_intent.succeeded", intent("pi_1", order=order))
    post_event(client, delivered)
    stripe_api.expect_request("/v1/events", method="GET").respond_with_json(
        events_page(missed, delivered))

    counts = payments_reconcile()

    assert (counts["events_listed"], counts["events_missed"]) == (2, 1)
    fetched = StripeEvent.objects.get(stripe_id=missed["id"])
    assert (fetched.source, fetched.status) == (EventSource.RECONCILIATION,
                                                EventStatus.RECEIVED)
    stripe_event_process(event_id=fetched.pk)
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED
    request, _ = stripe_api.log[0]
    assert request.headers["Authorization"] == "Bearer sk_test_only"
    assert "payment_intent.succeeded" in request.query_string.decode().replace("%2E", ".")
    # Again: nothing new.
    stripe_api.expect_request("/v1/events").respond_with_json(events_page(missed, delivered))
    assert payments_reconcile()["events_missed"] == 0


def test_pages_of_events_are_followed(stripe_api, order):
    first = [event("payment_intent.created", intent(f"pi_{n}", order=order,
                                                     status="processing"))
             for n in range(3)]
    second = [event("payment_intent.created", intent("pi_9", order=order,
                                                      status="processing"))]
    stripe_api.expect_ordered_request("/v1/events").respond_with_json(
        events_page(*first, has_more=True))
    stripe_api.expect_ordered_request("/v1/events").respond_with_json(events_page(*second))

    assert payments_reconcile()["events_missed"] == 4
    assert f"starting_after={first[-1]['id']}" in stripe_api.log[1][0].query_string.decode()


def test_a_payment_left_pending_is_asked_of_stripe_and_fixed(stripe_api, order):
    Payment.objects.create(order=order, payer=order.client, amount_cents=11_300,
                           stripe_payment_intent_id="pi_stale",
                           created_at=timezone.now() - timedelta(hours=2))
    Payment.objects.create(order=order, payer=order.client, amount_cents=11_300,
                           stripe_payment_intent_id="pi_young")  # too young to ask
    stripe_api.expect_request("/v1/events").respond_with_json(events_page())
    stripe_api.expect_request("/v1/payment_intents/pi_stale").respond_with_json(
        intent("pi_stale", order=order, status="succeeded"))

    counts = payments_reconcile()

    assert (counts["payments_checked"], counts["payments_fixed"]) == (1, 1)
    statuses = dict(Payment.objects.values_list("stripe_payment_intent_id", "status"))
    assert statuses == {"pi_stale": "succeeded", "pi_young": "pending"}


def test_stripe_unreachable_is_a_retryable_error(settings, order):
    from payments.stripe_api import StripeUnavailable

    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    with pytest.raises(StripeUnavailable):
        payments_reconcile()
