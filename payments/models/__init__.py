"""The payments app's models, one module per sub-domain."""

from payments.models.events import EventSource, EventStatus, StripeEvent
from payments.models.payment import Payment, PaymentStatus
from payments.models.tax import PaymentTaxLine, TaxRate, TaxType

from payments.models.receipts import Receipt, ReceiptCounter, ReceiptStatus  # isort: skip
from payments.models.disputes import Dispute, DisputeOutcome, DisputeStatus  # isort: skip

__all__ = ["EventSource", "EventStatus", "Payment", "PaymentStatus", "PaymentTaxLine",
           "StripeEvent", "TaxRate", "TaxType"]
__all__ += ["Receipt", "ReceiptCounter", "ReceiptStatus"]
__all__ += ["Dispute", "DisputeOutcome", "DisputeStatus"]
