"""The payments app's models, one module per sub-domain."""

from payments.models.payment import Payment, PaymentStatus
from payments.models.tax import PaymentTaxLine, TaxRate, TaxType

__all__ = ["Payment", "PaymentStatus", "PaymentTaxLine", "TaxRate", "TaxType"]
