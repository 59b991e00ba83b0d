"""Receipts: numbered without gaps under concurrency, stored as a PDF in S3 (moto), in the
payer's language, emailed once with the PDF attached; kept 7 years like every payment
record. Real PostgreSQL, Redis, workers and a moto_server."""

import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.db import IntegrityError, InternalError, connection, transaction
from django.test import Client
from pypdf import PdfReader

from marketplace.models import Order
from notifications.models import EmailLog, EmailStatus
from payments.models import (
    Payment,
    PaymentTaxLine,
    Receipt,
    ReceiptStatus,
    StripeEvent,
)
from payments.services import intents
from payments.services.events import stripe_event_process
from payments.services.receipts import (
    receipt_deliver,
    receipt_number_allocate,
    receipt_pdf_render,
)
from tests.conftest import drain
from tests.notifications.conftest import make_user
from tests.payments.conftest import event, intent, post_event, process_at_once

pytestmark = pytest.mark.django_db(transaction=True)


def pending_payment(intent_id: str, *, email: str = "payer@example.test", language="en",
                    province: str = "ON", time_zone: str = "America/Toronto",
                    title: str = "Deck repair") -> Payment:
    """An order and its pending payment with its tax lines, as checkout leaves them."""
    taxes = {"ON": [("HST", "13", 1_300)],
             "QC": [("GST", "5", 500), ("QST", "9.975", 998)]}[province]
    tax = sum(amount for _, _, amount in taxes)
    payer = make_user(email, language=language, first_name="Pat", time_zone=time_zone)
    order = Order.objects.create(client=payer, title=title, province=province,
                                 subtotal_cents=10_000, tax_cents=tax,
                                 total_cents=10_000 + tax)
    payment = Payment.objects.create(order=order, payer=payer, amount_cents=order.total_cents,
                                     tax_cents=tax, stripe_payment_intent_id=intent_id)
    for tax_type, rate, amount in taxes:
        PaymentTaxLine.objects.create(payment=payment, province=province, tax_type=tax_type,
                                      rate_percent=Decimal(rate), taxable_cents=10_000,
                                      amount_cents=amount)
    return payment


def succeed(payment: Payment) -> StripeEvent:
    """Stripe's payment_intent.succeeded for ``payment``, received through the webhook."""
    post_event(Client(), event("payment_intent.succeeded",
                               intent(payment.stripe_payment_intent_id, order=payment.order)))
    return StripeEvent.objects.get(object_id=payment.stripe_payment_intent_id)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)


def test_20_payments_succeeding_at_once_are_numbered_1_to_20():
    # Given 20 payments whose success events are stored
    rows = [succeed(pending_payment(f"pi_{n}", email=f"payer{n}@example.test"))
            for n in range(20)]

    # When 20 workers process them at the same instant
    outcomes = process_at_once([row.pk for row in rows])

    # Then each has one receipt, and the numbers are exactly 1..20
    assert outcomes == ["processed"] * 20
    assert sorted(Receipt.objects.values_list("number", flat=True)) == list(range(1, 21))
    assert Receipt.objects.values("payment").distinct().count() == 20


def test_a_rolled_back_success_gives_its_number_back(monkeypatch):
    first, second, third = (pending_payment(f"pi_{n}", email=f"p{n}@example.test")
                            for n in range(3))
    stripe_event_process(event_id=succeed(first).pk)

    # Given a later hook that fails, after the receipt took its number
    def failing_hook(payment):
        raise RuntimeError("accounting is down")

    monkeypatch.setattr(intents, "ON_SUCCEEDED", [*intents.ON_SUCCEEDED, failing_hook])
    failed = succeed(second)
    with pytest.raises(RuntimeError):
        stripe_event_process(event_id=failed.pk, final_attempt=False)
    assert not Receipt.objects.filter(payment=second).exists()

    # When the next payment succeeds (the failing hook fixed)
    monkeypatch.setattr(intents, "ON_SUCCEEDED", [h for h in intents.ON_SUCCEEDED
                                                  if h is not failing_hook])
    stripe_event_process(event_id=succeed(third).pk)
    stripe_event_process(event_id=failed.pk)  # the retry of the failed one

    # Then no number was lost: 1, 2, 3 in commit order
    assert list(Receipt.objects.order_by("number").values_list("payment_id", "number")) == [
        (first.pk, 1), (third.pk, 2), (second.pk, 3)]


def test_a_number_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError):
        receipt_number_allocate()


def test_the_pdf_is_stored_privately_in_s3_and_says_what_was_paid(s3):
    payment = pending_payment("pi_1")
    stripe_event_process(event_id=succeed(payment).pk)
    receipt = Receipt.objects.get()

    assert receipt_deliver(receipt_id=receipt.pk) == ReceiptStatus.EMAILED

    receipt.refresh_from_db()
    assert s3.keys("media") == ["receipts/R-000001.pdf"] == [receipt.pdf_key]
    stored = s3.client.get_object(Bucket=s3.buckets["media"], Key=receipt.pdf_key)
    assert stored["ContentType"] == "application/pdf"
    acl = s3.client.get_object_acl(Bucket=s3.buckets["media"], Key=receipt.pdf_key)
    assert all("AllUsers" not in str(grant["Grantee"]) for grant in acl["Grants"])
    data = stored["Body"].read()
    day = receipt.issued_at.astimezone(ZoneInfo("America/Toronto"))
    assert pdf_text(data).splitlines() == [
        "Jobsite", "Receipt R-000001",
        "Receipt number", "R-000001",
        "Date", f"{day:%B} {day.day}, {day.year}",
        "Order", f"#{payment.order_id} Deck repair",
        "Subtotal", "$100.00 CAD",
        "HST (ON) 13%", "$13.00 CAD",
        "Total paid", "$113.00 CAD",
        "Currency", "CAD",
        "Jobsite - Canada's contractor marketplace. Thank you for your payment."]
    # Rendering again gives the same bytes: a re-run overwrites the key with the same file
    assert receipt_pdf_render(receipt) == data
    assert (receipt.subtotal_cents, receipt.tax_cents, receipt.total_cents) == (
        10_000, 1_300, 11_300)
    assert receipt.tax_lines == [{"tax_type": "HST", "province": "ON",
                                  "rate_percent": "13.00000", "amount_cents": 1_300}]


def test_a_french_payer_gets_a_french_receipt_dated_in_their_time_zone(s3):
    # Given a Québec payer reading French, in Vancouver, paying at 01:30 UTC on Jan 2
    from datetime import UTC, datetime

    payment = pending_payment("pi_1", language="fr", province="QC",
                              time_zone="America/Vancouver", title="Réfection du toit")
    stripe_event_process(event_id=succeed(payment).pk)
    Receipt.objects.update(issued_at=datetime(2027, 1, 2, 1, 30, tzinfo=UTC))
    receipt = Receipt.objects.get()

    text = pdf_text(receipt_pdf_render(receipt)).replace("\u00a0", " ")

    assert receipt.language == "fr"
    assert text.splitlines() == [
        "Jobsite", "Reçu R-000001",
        "Numéro du reçu", "R-000001",
        "Date", "1 janvier 2027",  # still Jan 1 in Vancouver
        "Commande", f"#{payment.order_id} Réfection du toit",
        "Sous-total", "100,00 $ CAD",
        "TPS (QC) 5 %", "5,00 $ CAD",
        "TVQ (QC) 9,975 %", "9,98 $ CAD",
        "Total payé", "114,98 $ CAD",
        "Devise", "CAD",
        "Jobsite - le marché des entrepreneurs du Canada. Merci de votre paiement."]


def test_from_a_signed_webhook_one_email_carries_the_stored_pdf(s3, broker, worker):
    # Given a payment whose success Stripe reports twice (a replay with a new event id)
    payment = pending_payment("pi_1", language="fr", province="QC")
    body = intent("pi_1", order=payment.order)
    client = Client()

    # When both deliveries go through the webhook and the real worker
    post_event(client, event("payment_intent.succeeded", body))
    post_event(client, event("payment_intent.succeeded", body))
    drain(broker, worker)

    # Then one receipt, one email, with the stored PDF attached and the same text in it
    receipt = Receipt.objects.get()
    assert receipt.status == ReceiptStatus.EMAILED
    log = EmailLog.objects.get(kind="payment_confirmation")
    assert log.status == EmailStatus.SENT and log.context["receipt_id"] == receipt.pk
    [message] = [m for m in mail.outbox if getattr(m, "tags", None) == ["payment_confirmation"]]
    [(filename, content, mimetype)] = message.attachments
    stored = s3.client.get_object(Bucket=s3.buckets["media"], Key=receipt.pdf_key)
    assert (filename, mimetype) == ("recu-R-000001.pdf", "application/pdf")
    assert content == stored["Body"].read()
    html = message.alternatives[0][0].replace("\u00a0", " ")
    text = message.body.replace("\u00a0", " ")
    pdf = pdf_text(content).replace("\u00a0", " ")
    for row in ("Reçu R-000001", "TVQ (QC) 9,975 %", "9,98 $ CAD", "Total payé",
                "114,98 $ CAD"):
        assert row in pdf and row in text and row in html, row
    assert "TVQ (QC) 9,975 % : 9,98 $ CAD" in text
    assert "Votre reçu R-000001 figure ci-dessous et en pièce jointe" in text


def test_delivering_twice_stores_one_pdf_and_queues_one_email(s3, broker):
    payment = pending_payment("pi_1")
    stripe_event_process(event_id=succeed(payment).pk)
    receipt = Receipt.objects.get()

    assert receipt_deliver(receipt_id=receipt.pk) == ReceiptStatus.EMAILED
    assert receipt_deliver(receipt_id=receipt.pk) == ReceiptStatus.EMAILED

    assert EmailLog.objects.filter(kind="payment_confirmation").count() == 1
    assert s3.keys("media") == ["receipts/R-000001.pdf"]


def test_a_receipt_row_cannot_be_deleted():
    payment = pending_payment("pi_1")
    stripe_event_process(event_id=succeed(payment).pk)
    receipt = Receipt.objects.get()

    with pytest.raises((IntegrityError, InternalError), match="kept 7 years"), \
            connection.cursor() as cursor:
        cursor.execute("DELETE FROM payments_receipt")
    with pytest.raises((IntegrityError, InternalError), match="kept 7 years"), \
            transaction.atomic():
        Receipt.objects.filter(pk=receipt.pk).delete()
    assert Receipt.objects.filter(pk=receipt.pk).exists()


def test_the_emails_receipt_link_serves_the_pdf_to_the_payer_only(s3):
    from django.urls import reverse

    payment = pending_payment("pi_1")
    url = reverse("order-receipt", args=[payment.order_id])
    payer, stranger = Client(), Client()
    payer.force_login(payment.payer)
    stranger.force_login(make_user("other@example.test"))
    assert payer.get(url).status_code == 404  # not paid yet

    stripe_event_process(event_id=succeed(payment).pk)
    receipt_deliver(receipt_id=Receipt.objects.get().pk)

    response = payer.get(url)
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'inline; filename="R-000001.pdf"'
    assert "R-000001" in pdf_text(response.content)
    assert stranger.get(url).status_code == 404
    assert Client().get(url).status_code == 302  # to the login page
