"""Reconciliation: what Stripe knows that we do not.

Stripe retries a webhook for days and lists the events of the last 30 days. Hourly, this
asks for the events of ``PAYMENT_RECONCILE_LOOKBACK_HOURS`` of every type we handle and
stores the ones we never received, through the same path as the webhook (they are then
processed by the same handlers); and it asks for each payment still pending after
``PAYMENT_RECONCILE_AFTER_MINUTES`` and applies its intent's state through the handler of
that state. Nothing here writes to Stripe.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.models import EventSource, Payment, PaymentStatus, StripeEvent
from payments.services.dispatch import handled_types, handler_for
from payments.services.events import stripe_event_receive
from payments.stripe_api import EventSummary, events_list, payment_intent_retrieve

logger = logging.getLogger("payments")

#: A PaymentIntent's status → the event type whose handler applies it.
INTENT_STATUS_EVENT = {"succeeded": "payment_intent.succeeded",
                       "canceled": "payment_intent.canceled",
                       "requires_payment_method": "payment_intent.payment_failed"}


def payments_reconcile(*, now: datetime | None = None) -> dict[str, int]:
    """Returns counts: events_listed, events_missed (stored now), payments_checked,
    payments_fixed."""
    now = now or timezone.now()
    counts = {"events_listed": 0, "events_missed": 0, "payments_checked": 0,
              "payments_fixed": 0}
    since = int((now - timedelta(hours=settings.PAYMENT_RECONCILE_LOOKBACK_HOURS)).timestamp())
    types = handled_types()
    after = None
    while True:
        page = events_list(created_after=since, types=types, starting_after=after)
        events = page.get("data") or []
        counts["events_listed"] += len(events)
        known = set(StripeEvent.objects.filter(
            stripe_id__in=[event["id"] for event in events]).values_list("stripe_id",
                                                                          flat=True))
        for event in events:
            if event["id"] in known:
                continue
            summary = EventSummary(id=event["id"], type=event["type"],
                                   object_id=event["data"]["object"].get("id", ""),
                                   livemode=bool(event.get("livemode")),
                                   created=int(event["created"]))
            if stripe_event_receive(summary, json.dumps(event).encode(),
                                    source=EventSource.RECONCILIATION):
                counts["events_missed"] += 1
        if not page.get("has_more") or not events:
            break
        after = events[-1]["id"]
    stale = Payment.objects.filter(
        status__in=[PaymentStatus.PENDING, PaymentStatus.FAILED],
        created_at__lt=now - timedelta(minutes=settings.PAYMENT_RECONCILE_AFTER_MINUTES),
        created_at__gt=now - timedelta(days=30))
    for intent_id, status in stale.values_list("stripe_payment_intent_id", "status"):
        counts["payments_checked"] += 1
        intent = payment_intent_retrieve(intent_id)
        event_type = INTENT_STATUS_EVENT.get(intent.get("status", ""))
        if event_type is None or (status == PaymentStatus.FAILED
                                  and event_type == "payment_intent.payment_failed"):
            continue
        with transaction.atomic():
            handler_for(event_type)({"type": event_type, "data": {"object": intent}}, None)
            changed = Payment.objects.filter(stripe_payment_intent_id=intent_id).exclude(
                status=status).exists()
        counts["payments_fixed"] += changed
    logger.info("payments reconciled", extra=counts)
    return counts
