"""Starting a payment: the tax of the order's province, a PaymentIntent at Stripe (a local
server speaking its API) with an idempotency key derived from the order, never random;
a repeat resumes the same intent; the endpoint is rate-limited."""

import json

import pytest
from django.urls import reverse
from werkzeug import Response

from jobs.http import ENDPOINT_LIMITS
from jobs.ratelimit import rate_limit_reset
from payments.models import Payment, PaymentTaxLine
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_api(settings, httpserver):
    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")
    intents: dict[str, str] = {}

    def create(request):
        key = request.headers["Idempotency-Key"]
        intent_id = intents.setdefault(key, f"pi_{len(intents) + 1}")  # Stripe's replay rule
        form = request.form
        return Response(json.dumps({
            "id": intent_id, "object": "payment_intent", "amount": int(form["amount"]),
            "currency": form["currency"], "status": "requires_payment_method",
            "client_secret": f"{intent_id}_secret_x",
            "metadata": {"order_id": form["metadata[order_id]"],
                         "payer_id": form["metadata[payer_id]"]}}),
            content_type="application/json")

    httpserver.expect_request("/v1/payment_intents", method="POST").respond_with_handler(
        create)
    httpserver.intents = intents
    return httpserver


def test_starting_a_payment_computes_tax_and_creates_one_intent(client, order, stripe_api,
                                                                redis_client):
    rate_limit_reset(ENDPOINT_LIMITS["payment-start"], f"user:{order.client_id}")
    client.force_login(order.client)
    url = reverse("order-payment-start", args=[order.pk])

    first = client.post(url)
    again = client.post(url)  # a double click

    assert first.status_code == again.status_code == 201
    assert first.json() == again.json() == {
        "payment_id": first.json()["payment_id"], "client_secret": "pi_1_secret_x",
        "amount_cents": 11_300, "tax_cents": 1_300, "currency": "CAD"}
    payment = Payment.objects.get()
    assert (payment.stripe_payment_intent_id, payment.status) == ("pi_1", "pending")
    assert list(PaymentTaxLine.objects.values_list("tax_type", "amount_cents")) == [
        ("HST", 1_300)]
    keys = [request.headers["Idempotency-Key"] for request, _ in stripe_api.log]
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0].startswith("jobsite-")


def test_only_the_client_pays_and_not_twice(client, order, stripe_api, redis_client):
    other = make_user("other@example.test")
    client.force_login(other)
    assert client.post(reverse("order-payment-start", args=[order.pk])).status_code == 403
    Payment.objects.create(order=order, payer=order.client, amount_cents=11_300,
                           stripe_payment_intent_id="pi_done", status="succeeded")
    client.force_login(order.client)
    response = client.post(reverse("order-payment-start", args=[order.pk]))
    assert response.status_code == 400 and "already paid" in response.json()["error"]


def test_stripe_down_answers_503_and_stores_nothing(client, order, settings, redis_client):
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"
    client.force_login(order.client)
    response = client.post(reverse("order-payment-start", args=[order.pk]))
    assert response.status_code == 503 and response["Retry-After"] == "30"
    assert not Payment.objects.exists()


def test_the_endpoint_is_rate_limited(client, order, stripe_api, redis_client):
    client.force_login(order.client)
    url = reverse("order-payment-start", args=[order.pk])
    limit = ENDPOINT_LIMITS["payment-start"].limit
    codes = [client.post(url).status_code for _ in range(limit + 1)]
    assert codes == [201] * limit + [429]


def test_a_webhook_that_made_the_row_first_still_gets_the_tax_lines(client, order, stripe_api,
                                                                    redis_client):
    """payment_intent.created processed before checkout's own transaction committed: the
    row exists from the intent's metadata, without tax lines; checkout records them."""
    from payments.models import StripeEvent
    from payments.services.events import stripe_event_process
    from tests.payments.conftest import event, intent, post_event

    stripe_api.intents["jobsite-placeholder"] = "pi_0"  # the next intent is pi_2
    post_event(client, event("payment_intent.created",
                             intent("pi_2", order=order, status="requires_payment_method")))
    stripe_event_process(event_id=StripeEvent.objects.get().pk)
    assert Payment.objects.get().tax_lines.count() == 0

    rate_limit_reset(ENDPOINT_LIMITS["payment-start"], f"user:{order.client_id}")
    client.force_login(order.client)
    assert client.post(reverse("order-payment-start", args=[order.pk])).status_code == 201

    payment = Payment.objects.get()
    assert payment.stripe_payment_intent_id == "pi_2"
    assert list(payment.tax_lines.values_list("tax_type", "amount_cents")) == [("HST", 1_300)]
