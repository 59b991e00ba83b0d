"""Receipts: one per successful payment, numbered without gaps (CRA: sequential, unique).

**Why a counter row and not a PostgreSQL SEQUENCE.** ``nextval()`` is not transactional: a
transaction that takes a number and then rolls back (a handler that fails and is retried,
a deadlock, a worker killed mid-way) never gives it back, and a sequence's cached values
are lost on a crash, so a sequence leaves gaps by design. The number is instead taken from
:class:`ReceiptCounter` with one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` inside the
transaction that marks the payment succeeded and inserts the receipt: the statement locks
the counter row until that transaction ends, so numbers are handed out one transaction at
a time, and a rollback takes back both the receipt and its number. The price is that
successful payments commit one after another for the few milliseconds between taking the
number and the commit, which is far below our payment rate.

Receipt rows are payment records (7 years): the same delete guard as ``payments_payment``
(migration 0003).
"""

from django.db import models
from django.utils import timezone

#: The one numbering series (a row of :class:`ReceiptCounter`).
RECEIPT_SERIES = "receipts"
#: The prefix of a stored receipt PDF in the media store (private: no public ACL, no URL).
RECEIPT_PDF_PREFIX = "receipts/"


class ReceiptCounter(models.Model):
    """The last receipt number issued in ``series``. Only
    :func:`payments.services.receipts.receipt_number_allocate` writes it."""

    series = models.CharField(max_length=20, unique=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.series}: {self.last_number}"


class ReceiptStatus(models.TextChoices):
    ISSUED = "issued", "Issued (PDF not stored yet)"
    EMAILED = "emailed", "PDF stored, confirmation email queued"
    # The PDF is stored, but the payer has no deliverable address (e.g. an anonymised
    # account): there is nobody to email.
    NOT_EMAILED = "not_emailed", "PDF stored, no deliverable address"


class Receipt(models.Model):
    """What the payer was given for a payment, as issued: a snapshot, so a later change of
    the order or of a tax rate never changes a receipt already issued."""

    number = models.PositiveBigIntegerField(unique=True)
    payment = models.OneToOneField("payments.Payment", on_delete=models.PROTECT,
                                   related_name="receipt")
    language = models.CharField(max_length=2)
    # The payer's time zone when it was issued: the date printed is that day there.
    time_zone = models.CharField(max_length=64)
    order_title = models.CharField(max_length=200)
    currency = models.CharField(max_length=3)
    subtotal_cents = models.PositiveBigIntegerField()
    tax_cents = models.PositiveBigIntegerField()
    total_cents = models.PositiveBigIntegerField()
    # [{"tax_type": "HST", "province": "ON", "rate_percent": "13.00000",
    #   "amount_cents": 1300}, ...] in invoice order.
    tax_lines = models.JSONField(default=list)
    issued_at = models.DateTimeField()
    status = models.CharField(max_length=12, choices=ReceiptStatus.choices,
                              default=ReceiptStatus.ISSUED)
    # The Dramatiq message that stores and emails it (jobs.stateful re-drives from here).
    message_id = models.CharField(max_length=64, blank=True)
    pdf_key = models.CharField(max_length=200, blank=True)
    pdf_stored_at = models.DateTimeField(null=True, blank=True)
    # The delete guard keeps each receipt 7 years from here (payments.db_guard).
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-number"]
        indexes = [models.Index(fields=["status", "updated_at"], name="receipt_unfinished",
                                condition=models.Q(status="issued"))]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        """The number as printed: ``R-000042``."""
        return receipt_label(self.number)


def receipt_label(number: int) -> str:
    return f"R-{number:06d}"
