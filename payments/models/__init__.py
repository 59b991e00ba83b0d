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

__all__ = ["Account", "EntryKind", "EventSource", "EventStatus", "JournalEntry",
           "JournalLine", "Payment", "PaymentArchive", "PaymentStatus", "PaymentTaxLine",
           "StripeEvent", "Subscription", "SubscriptionStatus", "TaxRate", "TaxType"]
