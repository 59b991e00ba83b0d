"""Canadian sales tax: the rates by jurisdiction with the date each took effect, and the
tax lines stored on a payment.

A rate row holds from its ``effective_from`` until the next row of the same (province, tax
type) takes over; there is no stored end date, so two rows can never overlap or leave a
gap. A tax that ends is recorded as a row of rate 0 from the day it ends (computation
writes no line for a zero rate). The rows are seeded by migration 0002 and added by staff
in the admin for a legislated change, before its date.
"""

from django.db import models
from django.utils import timezone

from marketplace.models import Province


class TaxType(models.TextChoices):
    GST = "GST", "GST (federal goods and services tax)"
    # One combined federal + provincial tax in the participating provinces, remitted to the
    # CRA as one amount: one line, never split into GST + a provincial part.
    HST = "HST", "HST (harmonized sales tax)"
    PST = "PST", "PST (provincial sales tax: BC, SK)"
    QST = "QST", "QST (Québec sales tax)"
    RST = "RST", "RST (Manitoba retail sales tax)"


#: The rate columns: a percentage with five decimals, so Québec's 9.975 % is exact.
RATE_MAX_DIGITS = 7
RATE_DECIMAL_PLACES = 5


class TaxRate(models.Model):
    """One tax of one jurisdiction, at ``rate_percent`` from ``effective_from`` on."""

    province = models.CharField(max_length=2, choices=Province.choices)
    tax_type = models.CharField(max_length=3, choices=TaxType.choices)
    rate_percent = models.DecimalField(max_digits=RATE_MAX_DIGITS,
                                       decimal_places=RATE_DECIMAL_PLACES)
    effective_from = models.DateField(
        help_text="First day the rate applies (the day the tax becomes payable, under the "
                  "transitional rules). It holds until the next row of the same province "
                  "and tax type.")
    source = models.TextField(help_text="Where the rate comes from: the act, regulation or "
                                        "official page, and any note.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["province", "tax_type", "effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["province", "tax_type", "effective_from"],
                                    name="tax_rate_one_per_province_type_date"),
            models.CheckConstraint(condition=models.Q(rate_percent__gte=0,
                                                      rate_percent__lt=100),
                                   name="tax_rate_percent_between_0_and_100"),
        ]

    def __str__(self) -> str:
        return f"{self.province} {self.tax_type} {self.rate_percent}% from {self.effective_from}"


class PaymentTaxLine(models.Model):
    """One tax charged on a payment, as computed when it was recorded: a copy of the rate,
    not a link to the rate row, so a later row never changes what was charged. The
    province is kept because a tax type alone does not say who is owed (PST: BC or SK)."""

    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT,
                                related_name="tax_lines")
    province = models.CharField(max_length=2, choices=Province.choices)
    tax_type = models.CharField(max_length=3, choices=TaxType.choices)
    rate_percent = models.DecimalField(max_digits=RATE_MAX_DIGITS,
                                       decimal_places=RATE_DECIMAL_PLACES)
    taxable_cents = models.PositiveBigIntegerField()
    amount_cents = models.PositiveBigIntegerField()
    # The delete guard keeps each line 7 years from here (payments.db_guard).
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["payment", "id"]
        constraints = [
            models.UniqueConstraint(fields=["payment", "tax_type"],
                                    name="payment_tax_line_one_per_type"),
        ]

    def __str__(self) -> str:
        return f"{self.tax_type} {self.amount_cents}¢ on payment #{self.payment_id}"
