"""Stripe for the payment tests: events built as Stripe sends them, signed with the real
library, posted to the real view; Stripe's API is a local HTTP server."""

import importlib
import itertools
import json
import threading
import time

import pytest
import stripe
from django.apps import apps
from django.conf import settings

from marketplace.models import Order
from tests.notifications.conftest import make_user

_ids = itertools.count(1)


def intent(intent_id: str, *, order: Order, status: str = "succeeded",
           amount: int | None = None, **fields) -> dict:
    amount = order.total_cents if amount is None else amount
    return {"id": intent_id, "object": "payment_intent", "amount": amount,
            "amount_received": amount if status == "succeeded" else 0, "currency": "cad",
            "status": status, "created": int(time.time()) - 60,
            "metadata": {"order_id": str(order.pk), "payer_id": str(order.client_id)},
            "latest_charge": f"ch_{intent_id[3:]}", **fields}


def event(event_type: str, obj: dict, *, event_id: str | None = None,
          created: int | None = None) -> dict:
    return {"id": event_id or f"evt_test_{next(_ids):06d}", "object": "event",
            "api_version": "2025-09-30.clover", "created": created or int(time.time()),
            "livemode": False, "type": event_type, "data": {"object": obj},
            "pending_webhooks": 1, "request": {"id": None, "idempotency_key": None}}


def signed(body: str, *, secret: str | None = None, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(
        body, secret or settings.STRIPE_WEBHOOK_SECRET[0], timestamp=timestamp)


def post_event(client, payload: dict | str, **sign):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    return client.post("/webhooks/stripe/", data=body, content_type="application/json",
                       HTTP_STRIPE_SIGNATURE=signed(body, **sign))


@pytest.fixture
def order(db):
    client = make_user("payer@example.test", first_name="Pat")
    return Order.objects.create(client=client, title="Deck repair", province="ON",
                                subtotal_cents=10_000, tax_cents=1_300, total_cents=11_300)


@pytest.fixture(autouse=True)
def tax_rates(db):
    """The rates of migration 0002. A transactional test's flush empties every table, the
    seeded rows with it; pytest-django runs those tests last, but a later transactional
    test would find no rates, so they are put back before each test (idempotent)."""
    importlib.import_module("payments.migrations.0002_tax_rates").seed_tax_rates(apps, None)


def process_at_once(event_ids: list[int]) -> list:
    """``stripe_event_process`` of each stored event, each in its own thread (and
    connection), all released at the same instant, as workers would. Returns what each
    returned, or the exception it raised."""
    from django.db import connection

    from payments.services.events import stripe_event_process

    barrier, outcomes = threading.Barrier(len(event_ids)), []

    def process(event_id: int) -> None:
        barrier.wait()
        try:
            outcomes.append(stripe_event_process(event_id=event_id))
        except Exception as exc:
            outcomes.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=process, args=(pk,)) for pk in event_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes
