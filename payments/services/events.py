"""Stripe events: stored once (unique on Stripe's id), processed once, replayable.

:func:`stripe_event_receive` is the webhook's work after the signature check: one
``INSERT … ON CONFLICT DO NOTHING`` and, for a new event of a handled type, its processing
enqueued on commit with the message id already on the row (jobs.stateful: a message lost
between commit and Redis, or by Redis, is re-driven from the row). A replay of the same
event id inserts nothing and enqueues nothing.

:func:`stripe_event_process` runs the event's handler inside one transaction that holds
the event row's lock and marks it processed, so two deliveries of one message (or two
messages for one event) handle it once; a failure rolls the handler's writes back, counts
the attempt, and on the final attempt marks the event failed (the job is then in the
failed-job list, from which a retry puts the event back to ``received``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from django.db import connection, transaction
from django.utils import timezone

from jobs.encryption import payload_fernet
from jobs.enqueue import enqueue_on_commit
from jobs.stateful import Unfinished
from payments.models import EventSource, EventStatus, StripeEvent
from payments.services.dispatch import handler_for
from payments.stripe_api import EventSummary

logger = logging.getLogger("payments")


def payload_encrypt(body: bytes) -> str:
    return payload_fernet().encrypt(body).decode("ascii")


def payload_decrypt(token: str) -> bytes:
    return payload_fernet().decrypt(token.encode("ascii"))


_INSERT = f"""
INSERT INTO {StripeEvent._meta.db_table}
  (stripe_id, type, object_id, livemode, created, payload, status, source, message_id,
   attempts, last_error, received_at, updated_at)
VALUES (%(id)s, %(type)s, %(object_id)s, %(livemode)s, %(created)s, %(payload)s,
        %(status)s, %(source)s, %(message_id)s, 0, '', now(), now())
ON CONFLICT (stripe_id) DO NOTHING
RETURNING id
"""


def stripe_event_receive(summary: EventSummary, body: bytes, *,
                         source: str = EventSource.WEBHOOK) -> int | None:
    """Store a verified event and enqueue its processing on commit. Returns the new row's
    id, or None when the event was stored before (a replay: nothing else is done).

    An event of a type no handler takes is stored as ``ignored`` with no payload."""
    handled = handler_for(summary.type) is not None
    message_id = str(uuid4()) if handled else ""
    params = {"id": summary.id, "type": summary.type, "object_id": summary.object_id[:255],
              "livemode": summary.livemode,
              "created": datetime.fromtimestamp(summary.created, UTC),
              "payload": payload_encrypt(body) if handled else "",
              "status": EventStatus.RECEIVED if handled else EventStatus.IGNORED,
              "source": source, "message_id": message_id}
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        cursor.execute(_INSERT, params)
        row = cursor.fetchone()
        if row is None:
            return None
        if handled:
            from payments.tasks import stripe_event_process_task

            enqueue_on_commit(stripe_event_process_task, row[0], _message_id=message_id)
    return row[0]


def stripe_event_process(*, event_id: int, final_attempt: bool = True) -> str:
    """Handle stored event ``event_id``. Returns what became of it (its status).

    Raises:
      whatever the handler raised (after counting the attempt), so the job is retried.
    """
    try:
        with transaction.atomic():
            event = (StripeEvent.objects.select_for_update()
                     .filter(pk=event_id).first())
            if event is None or event.status != EventStatus.RECEIVED:
                return event.status if event else "gone"
            handler = handler_for(event.type)
            if handler is None:  # a type no longer handled since it was stored
                status = EventStatus.IGNORED
            else:
                import json

                handler(json.loads(payload_decrypt(event.payload)), event)
                status = EventStatus.PROCESSED
            StripeEvent.objects.filter(pk=event_id).update(
                status=status, processed_at=timezone.now(), attempts=event.attempts + 1,
                last_error="")
            return status
    except Exception as exc:
        fields: dict[str, Any] = {"last_error": type(exc).__name__[:200],
                                  "updated_at": timezone.now()}
        if final_attempt:
            fields["status"] = EventStatus.FAILED
        from django.db.models import F

        StripeEvent.objects.filter(pk=event_id, status=EventStatus.RECEIVED).update(
            attempts=F("attempts") + 1, **fields)
        logger.warning("stripe event failed", extra={"stripe_event": event_id,
                                                     "error": type(exc).__name__,
                                                     "final": final_attempt})
        raise


def stripe_events_unfinished(cutoff: datetime, limit: int) -> Iterator[Unfinished]:
    """Events received but not processed, last changed before ``cutoff``, oldest first."""
    rows = (StripeEvent.objects.filter(status=EventStatus.RECEIVED, updated_at__lt=cutoff)
            .order_by("pk").values_list("pk", "message_id")[:limit])
    for pk, message_id in rows:
        yield Unfinished(message_id=message_id or str(uuid4()), args=(pk,), kwargs={})


def stripe_event_retry_prepare(event_id: int) -> bool:
    """Staff retry a failed event from the failed-job list: back to ``received``."""
    return bool(StripeEvent.objects.filter(pk=event_id, status=EventStatus.FAILED).update(
        status=EventStatus.RECEIVED, last_error="", updated_at=timezone.now()))


def stripe_event_replay(*, event: StripeEvent) -> bool:
    """Staff replay an event from admin: processed or failed, it goes through its handler
    again (handlers are idempotent: a replay of a processed event changes nothing that is
    already right). Ignored events have no payload and are not replayed."""
    from payments.tasks import stripe_event_process_task

    if event.status == EventStatus.IGNORED or not event.payload:
        return False
    message_id = str(uuid4())
    with transaction.atomic():
        updated = StripeEvent.objects.filter(pk=event.pk).exclude(
            status=EventStatus.IGNORED).update(status=EventStatus.RECEIVED,
                                               message_id=message_id, last_error="",
                                               updated_at=timezone.now())
        if updated:
            enqueue_on_commit(stripe_event_process_task, event.pk, _message_id=message_id)
    return bool(updated)
