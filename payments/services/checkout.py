"""A client starts paying an order: the tax computed for the order's province and day,
a PaymentIntent created at Stripe with an idempotency key derived from the order and the
attempt (a retried request, or a double click, gets the same intent, never a second
charge), the pending payment and its tax lines stored."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import Order, OrderStatus
from payments.models import Payment, PaymentStatus
from payments.stripe_api import idempotency_key, payment_intent_create
from payments.tax import payment_tax_record, tax_compute


@dataclass(frozen=True)
class PaymentStarted:
    payment: Payment
    client_secret: str  # for Stripe.js in the payer's browser; never stored or logged


def payment_start(*, order_id: int, user) -> PaymentStarted:
    """Start (or resume) the payment of order ``order_id`` by its client ``user``.

    Raises:
      PermissionDenied: ``user`` is not the order's client.
      ValidationError: the order is cancelled, or already paid.
      payments.stripe_api.StripeUnavailable / StripeRefused: Stripe failed; nothing stored.
    """
    with transaction.atomic():
        order = Order.objects.select_for_update().get(pk=order_id)
        if order.client_id != user.pk:
            raise PermissionDenied("Only the order's client pays it.")
        if order.status == OrderStatus.CANCELLED:
            raise ValidationError("The order is cancelled.")
        payments = list(order.payments.all())
        if any(p.status in (PaymentStatus.SUCCEEDED, PaymentStatus.PARTIALLY_REFUNDED,
                            PaymentStatus.REFUNDED) for p in payments):
            raise ValidationError("The order is already paid.")
        breakdown = tax_compute(province=order.province, subtotal_cents=order.subtotal_cents,
                                on=timezone.localdate())
        # One intent per attempt: a pending one is resumed (same key, same intent).
        attempt = sum(1 for p in payments if p.status != PaymentStatus.PENDING) + 1
        intent = payment_intent_create(
            amount_cents=breakdown.total_cents, currency=order.currency,
            metadata={"order_id": str(order.pk), "payer_id": str(user.pk)},
            key=idempotency_key("payment-intent", order.pk, attempt, breakdown.total_cents))
        payment, created = Payment.objects.get_or_create(
            stripe_payment_intent_id=intent["id"], defaults={
                "order": order, "payer": user, "amount_cents": breakdown.total_cents,
                "tax_cents": breakdown.tax_cents, "currency": order.currency})
        # Always (idempotent): Stripe's payment_intent.created may have reached the webhook
        # and made the row from the intent's metadata, without tax lines, before this
        # transaction committed.
        payment_tax_record(payment=payment, breakdown=breakdown)
        if created:
            audit_log_record(action="payment.started", resource=payment, actor=user,
                             metadata={"order_id": order.pk, "attempt": attempt})
    return PaymentStarted(payment=payment, client_secret=intent.get("client_secret", ""))
