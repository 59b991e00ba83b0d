"""Payment state from Stripe's PaymentIntents and charges, moved forward only.

Every handler finds the payment by its PaymentIntent id under a row lock (creating it from
the intent's metadata when the webhook came before our own record, e.g. ``succeeded``
before ``created``), and changes it only when the new state ranks above the current one
(:data:`STATUS_RANK`), so a repeated, late or out-of-order event changes nothing. What a
change sets off (confirmation email and push, the receipt, journal entries) runs from
:data:`ON_SUCCEEDED` / :data:`ON_REFUNDED` hooks, enqueued on commit: once per change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_log_record
from jobs.encryption import encrypt_json
from payments.models import Payment, PaymentStatus
from payments.services.dispatch import handles

logger = logging.getLogger("payments")

STATUS_RANK = {PaymentStatus.PENDING: 0, PaymentStatus.FAILED: 1, PaymentStatus.CANCELED: 2,
               PaymentStatus.SUCCEEDED: 3, PaymentStatus.PARTIALLY_REFUNDED: 4,
               PaymentStatus.REFUNDED: 5}

#: Run after a payment became succeeded / (partially) refunded, inside the transaction
#: that changed it: they enqueue their work on commit. Apps add theirs (receipts,
#: accounting) here.
ON_SUCCEEDED: list[Callable[[Payment], None]] = []
ON_REFUNDED: list[Callable[[Payment, int], None]] = []


class UnknownPayment(Exception):
    """An intent that is not ours (no order in its metadata): nothing to update."""


def _intent_id(value: Any) -> str:
    return value if isinstance(value, str) else (value or {}).get("id", "")


def payment_for_intent(intent: dict[str, Any]) -> Payment:
    """The payment of PaymentIntent ``intent``, locked; created (pending) from its
    metadata (``order_id``, ``payer_id``) when our record is not there yet.

    Raises:
      UnknownPayment: no payment for it and no order in its metadata.
    """
    intent_id = intent["id"]
    payment = Payment.objects.select_for_update().filter(
        stripe_payment_intent_id=intent_id).first()
    if payment is not None:
        return payment
    metadata = intent.get("metadata") or {}
    try:
        order_id, payer_id = int(metadata["order_id"]), int(metadata["payer_id"])
    except (KeyError, TypeError, ValueError):
        raise UnknownPayment(intent_id) from None
    fields = Payment._meta.concrete_fields
    with connection.cursor() as cursor:
        # Two events of one intent arriving together: one insert wins and holds the new row
        # (no other transaction sees it before commit), the other then locks it.
        cursor.execute(
            f"INSERT INTO {Payment._meta.db_table} (order_id, payer_id, "
            "stripe_payment_intent_id, status, amount_cents, tax_cents, refunded_cents, "
            "fee_cents, currency, stripe_charge_id, is_disputed, billing_details, created_at, "
            "updated_at) SELECT o.id, %s, %s, 'pending', %s, o.tax_cents, 0, 0, %s, '', "
            "false, '', %s, now() FROM marketplace_order o WHERE o.id = %s "
            "ON CONFLICT (stripe_payment_intent_id) DO NOTHING RETURNING "
            + ", ".join(field.column for field in fields),
            [payer_id, intent_id, int(intent.get("amount") or 0),
             str(intent.get("currency") or "cad").upper()[:3],
             datetime.fromtimestamp(int(intent.get("created") or 0) or
                                    int(timezone.now().timestamp()), UTC), order_id])
        row = cursor.fetchone()
    if row is not None:
        return Payment.from_db(connection.alias, [field.attname for field in fields], row)
    payment = Payment.objects.select_for_update().filter(
        stripe_payment_intent_id=intent_id).first()
    if payment is None:
        raise UnknownPayment(intent_id)
    return payment


def _advance(payment: Payment, status: PaymentStatus, **fields: Any) -> bool:
    """Move ``payment`` to ``status`` if that is forward; audit it. True when it moved."""
    if STATUS_RANK[status] <= STATUS_RANK[PaymentStatus(payment.status)]:
        return False
    before = payment.status
    payment.status = status
    for name, value in fields.items():
        setattr(payment, name, value)
    payment.save(update_fields=["status", "updated_at", *fields])
    audit_log_record(action=f"payment.{status}", resource=payment,
                     metadata={"from": before, "to": status, "order_id": payment.order_id})
    return True


def _charge_fields(intent: dict[str, Any]) -> dict[str, Any]:
    """The charge id, Stripe's fee and the billing details (encrypted) of an intent's
    latest charge, where the event carries them (expanded)."""
    charge = intent.get("latest_charge")
    if not isinstance(charge, dict):
        return {"stripe_charge_id": charge} if isinstance(charge, str) else {}
    fields: dict[str, Any] = {"stripe_charge_id": charge.get("id", "")}
    balance = charge.get("balance_transaction")
    if isinstance(balance, dict) and isinstance(balance.get("fee"), int):
        fields["fee_cents"] = balance["fee"]
    if charge.get("billing_details"):
        fields["billing_details"] = encrypt_json(charge["billing_details"])
    return fields


def _ignore_unknown(handler):
    def wrapped(event: dict[str, Any], row: Any) -> None:
        try:
            handler(event, row)
        except UnknownPayment:
            logger.info("stripe event for an intent that is not ours",
                        extra={"stripe_event": row.pk if row else None})
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@handles("payment_intent.created", "payment_intent.processing",
         "payment_intent.requires_action")
@_ignore_unknown
def intent_pending(event: dict[str, Any], row: Any) -> None:
    """Our record exists (pending), whatever came first."""
    payment_for_intent(event["data"]["object"])


@handles("payment_intent.succeeded")
@_ignore_unknown
def intent_succeeded(event: dict[str, Any], row: Any) -> None:
    intent = event["data"]["object"]
    payment = payment_for_intent(intent)
    amount = int(intent.get("amount_received") or intent.get("amount") or payment.amount_cents)
    if _advance(payment, PaymentStatus.SUCCEEDED, amount_cents=amount,
                succeeded_at=timezone.now(), **_charge_fields(intent)):
        for hook in ON_SUCCEEDED:
            hook(payment)


@handles("payment_intent.payment_failed")
@_ignore_unknown
def intent_failed(event: dict[str, Any], row: Any) -> None:
    _advance(payment_for_intent(event["data"]["object"]), PaymentStatus.FAILED)


@handles("payment_intent.canceled")
@_ignore_unknown
def intent_canceled(event: dict[str, Any], row: Any) -> None:
    _advance(payment_for_intent(event["data"]["object"]), PaymentStatus.CANCELED)


@handles("charge.refunded")
@_ignore_unknown
def charge_refunded(event: dict[str, Any], row: Any) -> None:
    """A refund (full or partial). ``amount_refunded`` only grows; a late event carrying
    a smaller total than one already applied changes nothing."""
    charge = event["data"]["object"]
    intent_id = _intent_id(charge.get("payment_intent"))
    if not intent_id:
        raise UnknownPayment(charge.get("id", ""))
    payment = payment_for_intent({"id": intent_id, "metadata": charge.get("metadata")})
    refunded = int(charge.get("amount_refunded") or 0)
    if refunded <= payment.refunded_cents or payment.status not in (
            PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED):
        return
    added = refunded - payment.refunded_cents
    status = (PaymentStatus.REFUNDED if refunded >= payment.amount_cents
              else PaymentStatus.PARTIALLY_REFUNDED)
    payment.refunded_cents = refunded
    if not _advance(payment, status, refunded_cents=refunded):
        # Still partially refunded, by more: the status stays, the amount moves.
        payment.save(update_fields=["refunded_cents", "updated_at"])
        audit_log_record(action="payment.refund_increased", resource=payment,
                         metadata={"refunded_cents": refunded, "order_id": payment.order_id})
    for hook in ON_REFUNDED:
        hook(payment, added)


def payment_confirmations_send(payment: Payment) -> None:
    """The payer's payment-confirmation push (ids and amounts only). The confirmation
    email goes once the receipt's PDF is stored, with it attached
    (``payments.services.receipts.receipt_deliver``)."""
    from notifications.services.push import send_push

    order = payment.order
    context = {"order_id": order.pk, "order_title": order.title,
               "amount_cents": payment.amount_cents, "currency": payment.currency}
    with transaction.atomic(savepoint=False):
        send_push(kind="payment_confirmation", user_id=payment.payer_id, context=context)


ON_SUCCEEDED.append(payment_confirmations_send)
