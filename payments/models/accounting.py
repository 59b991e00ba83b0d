"""The journal: double-entry postings of payments, refunds, fees and disputes, and the
record of each manual cold-storage archive of payment records.

An entry balances (its debits equal its credits) and has at least two lines: checked in
code before it is written (:func:`payments.services.accounting.journal_entry_post`) and by
the database at commit, whoever writes (a deferred constraint trigger, migration 0004).
Each line is a debit or a credit, never both (a check constraint). Entries are unique on
``source_key``, the event they record, so one event can never be posted twice. Lines are
never updated and, like every payment record, neither table loses a row younger than 7
years (the delete guard of :mod:`payments.db_guard`). The chart of accounts and the
posting rules are in :mod:`payments.services.accounting`.
"""

from django.db import models
from django.utils import timezone

from marketplace.models import Province
from payments.models.tax import TaxType


class Account(models.TextChoices):
    """The chart of accounts the journal posts to (codes as the accounting system has them)."""

    STRIPE_BALANCE = "1100", "1100 Stripe balance (clearing, until paid out)"
    DISPUTED_FUNDS = "1200", "1200 Accounts receivable: disputed funds held by Stripe"
    GST_HST_PAYABLE = "2300", "2300 GST/HST payable (CRA)"
    QST_PAYABLE = "2310", "2310 QST payable (Revenu Québec)"
    PST_PAYABLE = "2320", "2320 PST payable (BC, SK: by province)"
    RST_PAYABLE = "2330", "2330 RST payable (Manitoba)"
    TAX_UNALLOCATED = "2390", "2390 Sales tax payable, not broken down (to review)"
    REVENUE = "4000", "4000 Revenue"
    STRIPE_FEES = "5100", "5100 Stripe fees"
    DISPUTE_LOSSES = "5200", "5200 Dispute losses"


class EntryKind(models.TextChoices):
    PAYMENT = "payment", "Payment settled"
    FEE = "fee", "Stripe fee (learned after the payment)"
    REFUND = "refund", "Refund"
    DISPUTE_OPENED = "dispute_opened", "Dispute opened (funds withdrawn)"
    DISPUTE_WON = "dispute_won", "Dispute won (funds returned)"
    DISPUTE_LOST = "dispute_lost", "Dispute lost"


class JournalEntry(models.Model):
    """One balanced posting, recording one event of one payment."""

    kind = models.CharField(max_length=20, choices=EntryKind.choices)
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT,
                                related_name="journal_entries")
    # The event recorded, e.g. "payment:12", "refund:12:5000" (cumulative refunded cents),
    # "dispute:dp_123:opened": unique, so a replayed or concurrent event posts nothing.
    source_key = models.CharField(max_length=255, unique=True)
    currency = models.CharField(max_length=3, default="CAD")
    # When the entry was posted: the time it was written, never backdated, so a day's
    # export run after the day is complete.
    posted_at = models.DateTimeField(default=timezone.now, db_index=True)
    # The delete guard keeps each entry 7 years from here (payments.db_guard).
    created_at = models.DateTimeField(default=timezone.now)
    # Set by manage.py archive_payments with its payment's (never deleted).
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["posted_at", "id"]
        verbose_name_plural = "journal entries"

    def __str__(self) -> str:
        return f"Journal entry #{self.pk} ({self.source_key})"


class JournalLine(models.Model):
    """A debit or a credit to one account; tax lines name their tax type, and every line
    the province of the supply."""

    entry = models.ForeignKey(JournalEntry, on_delete=models.PROTECT, related_name="lines")
    account = models.CharField(max_length=4, choices=Account.choices)
    debit_cents = models.PositiveBigIntegerField(default=0)
    credit_cents = models.PositiveBigIntegerField(default=0)
    tax_type = models.CharField(max_length=3, choices=TaxType.choices, blank=True)
    province = models.CharField(max_length=2, choices=Province.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["entry", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(models.Q(debit_cents__gt=0, credit_cents=0)
                           | models.Q(debit_cents=0, credit_cents__gt=0)),
                name="journal_line_debit_or_credit"),
        ]

    def __str__(self) -> str:
        side = f"Dr {self.debit_cents}" if self.debit_cents else f"Cr {self.credit_cents}"
        return f"{self.account} {side}¢"


class PaymentArchive(models.Model):
    """One verified batch of ``manage.py archive_payments``: its manifest in cold storage
    and what the objects beside it hold (keys, counts, SHA-256; never the rows)."""

    manifest_key = models.CharField(max_length=500, unique=True)
    manifest_sha256 = models.CharField(max_length=64)
    storage_class = models.CharField(max_length=20)
    cutoff = models.DateTimeField(help_text="Payments created before this were archived.")
    first_payment_id = models.BigIntegerField()
    last_payment_id = models.BigIntegerField()
    counts = models.JSONField(help_text="Rows archived per table.")
    objects_written = models.JSONField(help_text="Each object: key, rows, SHA-256, size.")
    payments_marked = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return (f"Payment archive #{self.pk} (payments {self.first_payment_id}–"
                f"{self.last_payment_id})")
