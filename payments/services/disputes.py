"""Disputes from Stripe's ``charge.dispute.created`` / ``.updated`` / ``.closed`` events.

Every event carries the whole dispute object, so each handler does the same thing: lock
the payment (found by the dispute's ``payment_intent``; every event of one payment's
disputes takes this lock first, so two events of one dispute are applied one after the
other), then find or create the dispute row and move it forward only
(:data:`~payments.models.disputes.DISPUTE_STATUS_RANK`): a repeated or late event changes
nothing, a closed dispute is final (an ``updated`` after ``closed`` is ignored), and a
``closed`` that comes before ``created`` creates the row closed.

On the transitions, inside the handler's transaction: the payment's ``is_disputed`` is set
while any of its disputes is open (the order shows as disputed from it: the order admin);
:data:`ON_DISPUTE_OPENED` / :data:`ON_DISPUTE_CLOSED` hooks run (accounting); and the
notices to staff and to the order's contractor are enqueued on commit
(:func:`dispute_notify`, each stage once).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

from django.db import transaction
from django.utils import timezone

from audit.services import audit_log_record
from jobs.enqueue import enqueue_on_commit
from jobs.stateful import Unfinished
from payments.models import Dispute, DisputeOutcome, DisputeStatus, Payment
from payments.models.disputes import CLOSED_STATUSES, DISPUTE_STATUS_RANK, OPEN_STATUSES
from payments.services.dispatch import handles

logger = logging.getLogger("payments")

#: Run inside the handler's transaction when a dispute is first recorded (whatever its
#: status: one that arrives closed runs both, opened first) / when it closes. Accounting
#: adds its journal entries here; they enqueue any outside work on commit.
ON_DISPUTE_OPENED: list[Callable[[Dispute], None]] = []
ON_DISPUTE_CLOSED: list[Callable[[Dispute], None]] = []

#: The notify job's stages.
OPENED, CLOSED = "opened", "closed"
#: Staff are reminded of open disputes whose evidence is due within this.
EVIDENCE_REMINDER_WITHIN = timedelta(days=3)


class DisputePaymentUnknown(Exception):
    """A dispute on a PaymentIntent we have no payment for (yet): the event is retried,
    and ends in the failed-job list for staff if the payment never appears."""


def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if isinstance(value, int) and value else None


def _outcome(status: str) -> str:
    if status == DisputeStatus.WON:
        return DisputeOutcome.WON
    if status == DisputeStatus.LOST:
        return DisputeOutcome.LOST
    return DisputeOutcome.CLOSED


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
    """What we keep of a dispute object: ids, status, reason code, amount, dates."""
    evidence = obj.get("evidence_details") or {}
    charge = obj.get("charge")
    return {"stripe_charge_id": (charge if isinstance(charge, str)
                                 else (charge or {}).get("id", ""))[:255],
            "reason": str(obj.get("reason") or "")[:40],
            "amount_cents": int(obj.get("amount") or 0),
            "currency": str(obj.get("currency") or "cad").upper()[:3],
            "evidence_due_by": _moment(evidence.get("due_by"))}


def _payment_locked(obj: dict[str, Any]) -> Payment:
    intent = obj.get("payment_intent")
    intent_id = intent if isinstance(intent, str) else (intent or {}).get("id", "")
    payment = (Payment.objects.select_for_update().filter(stripe_payment_intent_id=intent_id)
               .first() if intent_id else None)
    if payment is None:
        raise DisputePaymentUnknown(obj.get("id", ""))
    return payment


def _open_transition(dispute: Dispute) -> None:
    audit_log_record(action="payment.dispute_opened", resource=dispute.payment,
                     metadata={"dispute_id": dispute.pk, "status": dispute.status,
                               "amount_cents": dispute.amount_cents,
                               "order_id": dispute.payment.order_id})
    for hook in ON_DISPUTE_OPENED:
        hook(dispute)


def _close_transition(dispute: Dispute) -> None:
    audit_log_record(action="payment.dispute_closed", resource=dispute.payment,
                     metadata={"dispute_id": dispute.pk, "status": dispute.status,
                               "outcome": dispute.outcome,
                               "order_id": dispute.payment.order_id})
    for hook in ON_DISPUTE_CLOSED:
        hook(dispute)


def _payment_flag(payment: Payment) -> None:
    """``is_disputed`` while any dispute of the payment is open."""
    disputed = payment.disputes.filter(status__in=OPEN_STATUSES).exists()
    if payment.is_disputed != disputed:
        payment.is_disputed = disputed
        payment.save(update_fields=["is_disputed", "updated_at"])


def dispute_apply(obj: dict[str, Any]) -> Dispute:
    """Apply the Stripe dispute object ``obj`` (see the module docstring). Runs inside the
    event's transaction.

    Raises:
      DisputePaymentUnknown: no payment for the dispute's PaymentIntent (retried).
    """
    payment = _payment_locked(obj)
    status = obj.get("status")
    if status not in DISPUTE_STATUS_RANK:
        raise ValueError(f"unknown dispute status {status!r}")
    fields = _fields(obj)
    dispute = (Dispute.objects.select_for_update()
               .filter(stripe_dispute_id=obj["id"]).first())
    closing = status in CLOSED_STATUSES
    now = timezone.now()
    if dispute is None:
        dispute = Dispute.objects.create(
            stripe_dispute_id=obj["id"], payment=payment, status=status,
            opened_at=_moment(obj.get("created")) or now,
            closed_at=now if closing else None,
            outcome=_outcome(status) if closing else "", **fields)
        dispute.payment = payment
        _open_transition(dispute)
        if closing:
            _close_transition(dispute)
        enqueue_notify(dispute, CLOSED if closing else OPENED)
    elif (dispute.status not in CLOSED_STATUSES
          and DISPUTE_STATUS_RANK[status] >= DISPUTE_STATUS_RANK[dispute.status]):
        dispute.status = status
        for name, value in fields.items():
            setattr(dispute, name, value)
        if closing:
            dispute.closed_at, dispute.outcome = now, _outcome(status)
        dispute.save()
        dispute.payment = payment
        if closing:
            _close_transition(dispute)
            enqueue_notify(dispute, CLOSED)
    _payment_flag(payment)
    return dispute


@handles("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
         "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated")
def dispute_event(event: dict[str, Any], row: Any) -> None:
    """Every dispute event carries the whole dispute: each applies it the same way."""
    dispute_apply(event["data"]["object"])


# --- Notices ------------------------------------------------------------------------------

def enqueue_notify(dispute: Dispute, stage: str) -> None:
    """Queue the stage's notices on commit; the row keeps the message id, so the platform
    re-drives the notices if the message is lost (:func:`disputes_notify_unfinished`)."""
    from payments.tasks import dispute_notify_task

    message_id = str(uuid4())
    setattr(dispute, f"{stage}_notify_message_id", message_id)
    Dispute.objects.filter(pk=dispute.pk).update(**{f"{stage}_notify_message_id": message_id})
    enqueue_on_commit(dispute_notify_task, dispute.pk, stage, _message_id=message_id)


def _money(cents: int, currency: str) -> str:
    return f"{cents // 100}.{cents % 100:02d} {currency}"


def _staff_body(dispute: Dispute, stage: str) -> str:
    """Ids, amounts, codes and dates only: no name, address or free text."""
    payment = dispute.payment
    lines = [f"Dispute #{dispute.pk} ({dispute.stripe_dispute_id}) on payment #{payment.pk}, "
             f"order #{payment.order_id}.",
             f"Amount: {_money(dispute.amount_cents, dispute.currency)}",
             f"Reason: {dispute.reason or 'not given'}",
             f"Status: {dispute.status}"]
    if stage == OPENED:
        due = (dispute.evidence_due_by.isoformat() if dispute.evidence_due_by
               else "not given")
        lines.append(f"Evidence due by: {due}")
    else:
        lines.append(f"Outcome: {dispute.outcome}")
    lines.append(f"Admin: /admin/payments/dispute/{dispute.pk}/change/")
    return "\n".join(lines) + "\n"


def _flag(stage: str) -> str:
    if stage not in (OPENED, CLOSED):
        raise ValueError(f"unknown stage {stage!r}")
    return f"{stage}_notified_at"


def dispute_notify(*, dispute_id: int, stage: str) -> bool:
    """Tell staff and the order's contractor that dispute ``dispute_id`` opened / closed,
    each once per stage, whatever the retries and duplicate deliveries:

    1. staff by ``email_staff_once`` (keyed by dispute and stage: claimed before it is
       sent, released if sending fails);
    2. then, under the row's lock, the contractor's email is recorded and queued (the
       email platform sends it once) in the transaction that sets the stage's
       ``*_notified_at`` — which is what marks the stage done.

    Returns whether this call finished the stage.
    """
    from jobs.alerts import email_staff_once
    from notifications.kinds import EmailContentError
    from notifications.services.sending import send_email

    flag = _flag(stage)
    dispute = (Dispute.objects.select_related("payment__order").filter(pk=dispute_id)
               .first())
    if dispute is None or getattr(dispute, flag) is not None:
        return False
    order = dispute.payment.order
    email_staff_once(
        key=f"dispute:{dispute.pk}:{stage}",
        subject=(f"Payment dispute opened: order #{order.pk}" if stage == OPENED else
                 f"Payment dispute closed ({dispute.outcome}): order #{order.pk}"),
        body=_staff_body(dispute, stage))
    with transaction.atomic():
        dispute = Dispute.objects.select_for_update().filter(pk=dispute_id).first()
        if dispute is None or getattr(dispute, flag) is not None:
            return False
        if order.contractor_id is not None:
            context: dict[str, Any] = {"order_id": order.pk, "order_title": order.title,
                                       "amount_cents": dispute.amount_cents,
                                       "currency": dispute.currency}
            if stage == OPENED:
                context["evidence_due_by"] = (dispute.evidence_due_by.isoformat()
                                              if dispute.evidence_due_by else "")
            else:
                context["outcome"] = dispute.outcome
            try:
                send_email(kind=f"dispute_{stage}", user_id=order.contractor_id,
                           context=context)
            except EmailContentError as exc:  # no active contractor or no valid address
                logger.warning("dispute notice not emailed to the contractor", extra={
                    "dispute_id": dispute.pk, "error": type(exc).__name__})
        setattr(dispute, flag, timezone.now())
        dispute.save(update_fields=[flag, "updated_at"])
    return True


def disputes_notify_unfinished(cutoff: datetime, limit: int) -> Iterator[Unfinished]:
    """Stages whose notices were queued but not finished, the row last changed before
    ``cutoff`` (``jobs.stateful``: re-driven when their message is no longer in Redis)."""
    for stage in (OPENED, CLOSED):
        rows = (Dispute.objects.filter(**{f"{stage}_notified_at__isnull": True,
                                          "updated_at__lt": cutoff})
                .exclude(**{f"{stage}_notify_message_id": ""}).order_by("pk")
                .values_list("pk", f"{stage}_notify_message_id")[:limit])
        for pk, message_id in rows:
            yield Unfinished(message_id=message_id, args=(pk, stage), kwargs={})


def dispute_notify_retry_prepare(dispute_id: int, stage: str) -> bool:
    """A retry from the failed-job list: there is work again while the stage is not done."""
    return Dispute.objects.filter(pk=dispute_id, **{f"{_flag(stage)}__isnull": True}).exists()


def disputes_evidence_reminder(*, now: datetime | None = None) -> int:
    """One staff email listing the open disputes whose evidence is due within
    :data:`EVIDENCE_REMINDER_WITHIN` (overdue ones included). Returns how many."""
    from jobs.alerts import email_staff_for_run

    now = now or timezone.now()
    due = list(Dispute.objects.filter(status__in=OPEN_STATUSES,
                                      evidence_due_by__lte=now + EVIDENCE_REMINDER_WITHIN)
               .select_related("payment").order_by("evidence_due_by", "pk"))
    if not due:
        return 0
    body = "\n".join(
        f"Dispute #{d.pk} ({d.stripe_dispute_id}), order #{d.payment.order_id}, "
        f"{_money(d.amount_cents, d.currency)}, {d.status}, evidence due by "
        f"{d.evidence_due_by.isoformat()}" for d in due) + "\n"
    email_staff_for_run(purpose="disputes-evidence-reminder",
                        subject=f"{len(due)} payment dispute(s) need evidence within 3 days",
                        body=body)
    return len(due)
