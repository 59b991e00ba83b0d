"""The payments app's models, one module per sub-domain."""

from payments.models.payment import Payment, PaymentStatus

__all__ = ["Payment", "PaymentStatus"]
