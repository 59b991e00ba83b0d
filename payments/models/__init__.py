"""The payments app's models, one module per sub-domain."""

from payments.models.accounting import (
    Account,
    EntryKind,
    JournalEntry,
    JournalLine,
    PaymentArchive,
)
from payments.models.events import EventSource, EventStatus, StripeEvent
from payments.models.payment import Payment, PaymentStatus
from payments.models.subscriptions import Subscription, SubscriptionStatus
from payments.models.tax import PaymentTaxLine, TaxRate, TaxType

from payments.models.receipts import Receipt, ReceiptCounter, ReceiptStatus  # isort: skip
from payments.models.disputes import Dispute, DisputeOutcome, DisputeStatus  # isort: skip

__all__ = ["Account", "Dispute", "DisputeOutcome", "DisputeStatus", "EntryKind",
           "EventSource", "EventStatus", "JournalEntry", "JournalLine", "Payment",
           "PaymentArchive", "PaymentStatus", "PaymentTaxLine", "Receipt", "ReceiptCounter",
           "ReceiptStatus", "StripeEvent", "Subscription", "SubscriptionStatus", "TaxRate",
           "TaxType"]
