"""Receipts: issued once per successful payment, stored as a PDF, emailed with the
confirmation.

1. :func:`receipt_issue` is an :data:`~payments.services.intents.ON_SUCCEEDED` hook: it runs
   inside the transaction that marks the payment succeeded (the payment row locked), takes
   the next number (:func:`receipt_number_allocate`, gapless: see
   ``payments.models.receipts``), writes the receipt with a snapshot of what was paid, and
   enqueues :func:`receipt_deliver` on commit.
2. :func:`receipt_deliver` (the ``receipt_deliver`` actor, stateful: the row is the truth)
   renders the PDF, puts it under ``receipts/`` in the media store (the same key and the
   same bytes however often it runs), then, under the row's lock and only while the row is
   ``issued``, queues the one payment-confirmation email and marks the row ``emailed``.
3. The email carries the receipt in its body and the PDF as an attachment, both produced
   at send time from ``receipt_id`` (registered with ``notifications.extensions`` in
   ``PaymentsConfig.ready``: notifications never imports payments).

The text of the PDF and of the email is one list of rows (:func:`receipt_document`), in
the payer's language, with the date on the payer's calendar.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import uuid4

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.enqueue import enqueue_on_commit
from jobs.stateful import Unfinished
from jobs.storage import object_store
from notifications.extensions import Attachment
from notifications.rendering import local_date, money_format, recipient_language
from payments.models import Payment, Receipt, ReceiptCounter, ReceiptStatus
from payments.models.receipts import RECEIPT_PDF_PREFIX, RECEIPT_SERIES, receipt_label
from payments.services.intents import ON_SUCCEEDED

logger = logging.getLogger("payments")

#: The media store holds the PDFs (private: objects are never given a public ACL or URL).
RECEIPT_STORE = "media"

LABELS = {
    "en": {"heading": "Receipt {number}", "number": "Receipt number", "date": "Date",
           "order": "Order", "subtotal": "Subtotal", "tax": "Tax", "total": "Total paid",
           "currency": "Currency", "file": "receipt-{number}.pdf",
           "footer": "Jobsite - Canada's contractor marketplace. Thank you for your payment."},
    "fr": {"heading": "Reçu {number}", "number": "Numéro du reçu", "date": "Date",
           "order": "Commande", "subtotal": "Sous-total", "tax": "Taxes",
           "total": "Total payé", "currency": "Devise", "file": "recu-{number}.pdf",
           "footer": "Jobsite - le marché des entrepreneurs du Canada. Merci de votre "
                     "paiement."},
}
#: The names of the taxes as each language writes them on an invoice.
TAX_NAMES = {
    "en": {"GST": "GST", "HST": "HST", "PST": "PST", "QST": "QST", "RST": "RST"},
    "fr": {"GST": "TPS", "HST": "TVH", "PST": "TVP", "QST": "TVQ", "RST": "TVD"},
}


# --- Numbering -------------------------------------------------------------------------

_ALLOCATE = f"""
INSERT INTO {ReceiptCounter._meta.db_table} AS counter (series, last_number)
VALUES (%s, 1)
ON CONFLICT (series) DO UPDATE SET last_number = counter.last_number + 1
RETURNING last_number
"""


def receipt_number_allocate() -> int:
    """The next receipt number. The counter row stays locked until the calling
    transaction ends; if it rolls back, so does the number (see ``models.receipts``).

    Raises:
      RuntimeError: called outside a transaction (the number would be committed alone).
    """
    if not connection.in_atomic_block:
        raise RuntimeError("receipt_number_allocate() needs the issuing transaction")
    with connection.cursor() as cursor:
        cursor.execute(_ALLOCATE, [RECEIPT_SERIES])
        return cursor.fetchone()[0]


# --- Issuing (inside the payment's transaction) -----------------------------------------

def _tax_snapshot(payment: Payment) -> list[dict[str, Any]]:
    """The payment's stored tax lines; for a payment recorded without them (created from a
    webhook before checkout wrote its row), the order's taxes on the day it succeeded, if
    they add up to the tax charged."""
    from payments.tax import TaxError, tax_compute

    lines = [{"tax_type": line.tax_type, "province": line.province,
              "rate_percent": str(line.rate_percent), "amount_cents": line.amount_cents}
             for line in payment.tax_lines.order_by("id")]
    if lines or not payment.tax_cents:
        return lines
    order = payment.order
    # The day as checkout takes it (the project's time zone).
    day = timezone.localdate(payment.succeeded_at or timezone.now())
    try:
        breakdown = tax_compute(province=order.province, subtotal_cents=order.subtotal_cents,
                                on=day)
    except TaxError:
        breakdown = None
    if breakdown is None or breakdown.tax_cents != payment.tax_cents:
        logger.warning("receipt without tax lines: none recorded and none that add up",
                       extra={"payment_id": payment.pk})
        return []
    return [{"tax_type": line.tax_type, "province": order.province,
             "rate_percent": str(line.rate_percent), "amount_cents": line.amount_cents}
            for line in breakdown.lines]


def receipt_issue(payment: Payment) -> Receipt:
    """Issue ``payment``'s receipt (an ``ON_SUCCEEDED`` hook: the caller's transaction has
    the payment locked and just marked it succeeded). Idempotent: a payment's receipt is
    returned as it is if it exists (one-to-one)."""
    existing = Receipt.objects.filter(payment=payment).first()
    if existing is not None:
        return existing
    payer = payment.payer
    tax_lines = _tax_snapshot(payment)
    tax_cents = sum(line["amount_cents"] for line in tax_lines) or payment.tax_cents
    total = payment.amount_cents
    receipt = Receipt(
        payment=payment, language=recipient_language(payer),
        time_zone=payer.time_zone or settings.BUSINESS_TIME_ZONE,
        order_title=payment.order.title[:200], currency=payment.currency,
        subtotal_cents=max(total - tax_cents, 0), tax_cents=tax_cents, total_cents=total,
        tax_lines=tax_lines, issued_at=payment.succeeded_at or timezone.now(),
        message_id=str(uuid4()))
    # Last, so the counter row is locked for as short a time as possible.
    receipt.number = receipt_number_allocate()
    receipt.save()
    from payments.tasks import receipt_deliver_task

    enqueue_on_commit(receipt_deliver_task, receipt.pk, _message_id=receipt.message_id)
    return receipt


ON_SUCCEEDED.append(receipt_issue)


# --- The document ---------------------------------------------------------------------------

@dataclass(frozen=True)
class ReceiptRow:
    label: str
    value: str
    strong: bool = False


@dataclass(frozen=True)
class ReceiptDocument:
    language: str
    heading: str  # "Receipt R-000042"
    rows: tuple[ReceiptRow, ...]
    footer: str
    filename: str


def _rate(rate_percent: str, language: str) -> str:
    text = f"{Decimal(rate_percent).normalize():f}"
    return text.replace(".", ",") + "\u00a0%" if language == "fr" else f"{text}%"


def receipt_document(receipt: Receipt) -> ReceiptDocument:
    """What the receipt says, row by row, in its language (the PDF and the email both)."""
    language = receipt.language if receipt.language in LABELS else "en"
    words = LABELS[language]

    def money(cents: int) -> str:
        return money_format(cents, receipt.currency, language)

    rows = [ReceiptRow(words["number"], receipt.label),
            ReceiptRow(words["date"], local_date(receipt.issued_at.isoformat(),
                                                 receipt.time_zone, language)),
            ReceiptRow(words["order"], f"#{receipt.payment.order_id} {receipt.order_title}"),
            ReceiptRow(words["subtotal"], money(receipt.subtotal_cents))]
    for line in receipt.tax_lines:
        name = TAX_NAMES[language].get(line["tax_type"], line["tax_type"])
        rows.append(ReceiptRow(f"{name} ({line['province']}) "
                               f"{_rate(line['rate_percent'], language)}",
                               money(line["amount_cents"])))
    if not receipt.tax_lines and receipt.tax_cents:
        rows.append(ReceiptRow(words["tax"], money(receipt.tax_cents)))
    rows += [ReceiptRow(words["total"], money(receipt.total_cents), strong=True),
             ReceiptRow(words["currency"], receipt.currency)]
    return ReceiptDocument(language=language,
                           heading=words["heading"].format(number=receipt.label),
                           rows=tuple(rows), footer=words["footer"],
                           filename=words["file"].format(number=receipt.label))


def receipt_pdf_render(receipt: Receipt) -> bytes:
    """The receipt as a PDF; the same receipt always gives the same bytes."""
    from payments.pdf import BRAND, pdf_table_document

    document = receipt_document(receipt)
    return pdf_table_document(title=f"{BRAND} - {document.heading}", heading=document.heading,
                              rows=[(row.label, row.value, row.strong)
                                    for row in document.rows],
                              footer=document.footer)


def receipt_pdf_key(receipt: Receipt) -> str:
    return f"{RECEIPT_PDF_PREFIX}{receipt.label}.pdf"


# --- Delivery (the receipt_deliver actor) ------------------------------------------------

def receipt_deliver(*, receipt_id: int) -> str:
    """Store receipt ``receipt_id``'s PDF and queue its confirmation email (once).
    Returns the receipt's status ("gone" when the row is not there).

    Raises:
      whatever storage raises (the job retries; the PDF is written again, identical).
    """
    receipt = (Receipt.objects.select_related("payment").filter(pk=receipt_id).first())
    if receipt is None:
        return "gone"
    if receipt.status != ReceiptStatus.ISSUED:
        return receipt.status
    key = receipt_pdf_key(receipt)
    object_store(RECEIPT_STORE).put(key, receipt_pdf_render(receipt),
                                    content_type="application/pdf",
                                    metadata={"receipt-number": str(receipt.number)})
    from notifications.kinds import EmailContentError
    from notifications.services.sending import send_email

    with transaction.atomic():
        locked = (Receipt.objects.select_for_update(of=("self",)).select_related("payment")
                  .get(pk=receipt_id))
        if locked.status != ReceiptStatus.ISSUED:
            return locked.status  # another delivery of this message finished first
        payment = locked.payment
        locked.pdf_key, locked.pdf_stored_at = key, timezone.now()
        try:
            send_email(kind="payment_confirmation", user_id=payment.payer_id, context={
                "order_id": payment.order_id, "order_title": locked.order_title,
                "amount_cents": locked.total_cents, "currency": locked.currency,
                "receipt_id": locked.pk})
            locked.status = ReceiptStatus.EMAILED
        except EmailContentError as exc:  # no active user or no valid address: nobody to mail
            logger.warning("receipt stored, not emailed", extra={
                "receipt_id": locked.pk, "error": type(exc).__name__})
            locked.status = ReceiptStatus.NOT_EMAILED
        locked.save(update_fields=["pdf_key", "pdf_stored_at", "status", "updated_at"])
    return locked.status


def receipts_unfinished(cutoff: datetime, limit: int) -> Iterator[Unfinished]:
    """Receipts issued but not delivered, last changed before ``cutoff``, oldest first."""
    rows = (Receipt.objects.filter(status=ReceiptStatus.ISSUED, updated_at__lt=cutoff)
            .order_by("pk").values_list("pk", "message_id")[:limit])
    for pk, message_id in rows:
        yield Unfinished(message_id=message_id or str(uuid4()), args=(pk,), kwargs={})


def receipt_retry_prepare(receipt_id: int) -> bool:
    """A retry from the failed-job list: there is work again while the row is ``issued``
    (it only leaves that state when the delivery succeeded)."""
    return Receipt.objects.filter(pk=receipt_id, status=ReceiptStatus.ISSUED).exists()


# --- The email's receipt (notifications.extensions) ----------------------------------------

def receipt_email_values(context: dict[str, Any], language: str) -> dict[str, Any]:
    """The receipt's rows for the confirmation email's body (nothing without a receipt)."""
    receipt_id = context.get("receipt_id")
    if receipt_id is None:
        return {}
    receipt = Receipt.objects.select_related("payment").get(pk=receipt_id)
    document = receipt_document(receipt)
    return {"receipt_number": receipt.label, "receipt_heading": document.heading,
            "receipt_rows": [{"label": row.label, "value": row.value, "strong": row.strong}
                             for row in document.rows]}


def receipt_email_attachments(context: dict[str, Any], language: str) -> list[Attachment]:
    """The stored PDF. Raises ``jobs.storage.ObjectMissing`` (the email retries) if it is
    not there."""
    receipt_id = context.get("receipt_id")
    if receipt_id is None:
        return []
    receipt = Receipt.objects.select_related("payment").get(pk=receipt_id)
    content = object_store(RECEIPT_STORE).get(receipt.pdf_key or receipt_pdf_key(receipt))
    return [Attachment(receipt_document(receipt).filename, content, "application/pdf")]


#: What the template check renders the confirmation's receipt branch with.
RECEIPT_SAMPLE_VALUES = {
    "receipt_number": receipt_label(42), "receipt_heading": "Receipt R-000042",
    "receipt_rows": [{"label": "Subtotal", "value": "$100.00 CAD", "strong": False},
                     {"label": "Total paid", "value": "$113.00 CAD", "strong": True}],
}
