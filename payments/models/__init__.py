"""The payments app's models, one module per sub-domain."""

from payments.models.events import EventSource, EventStatus, StripeEvent
from payments.models.payment import Payment, PaymentStatus

__all__ = ["EventSource", "EventStatus", "Payment", "PaymentStatus", "StripeEvent"]
