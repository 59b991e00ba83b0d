"""Disputes through signed webhooks and the real processing path: recorded, forward only,
out of order and repeated deliveries handled once, the payment and order flagged while
open, staff and the contractor told once per stage, with no personal data to staff."""

import time

import pytest
from django.core import mail
from django.test import Client

from marketplace.models import Order
from notifications.models import EmailLog
from payments.models import Dispute, DisputeOutcome, DisputeStatus, Payment, StripeEvent
from payments.services import disputes as dispute_service
from payments.services.events import stripe_event_process
from tests.conftest import drain
from tests.notifications.conftest import make_user
from tests.payments.conftest import event, post_event, process_at_once

pytestmark = pytest.mark.django_db(transaction=True)

DUE = int(time.time()) + 5 * 86_400


@pytest.fixture
def payment(settings):
    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]
    client = make_user("payer@example.test", first_name="Pat")
    contractor = make_user("pro@example.test", first_name="Robin", language="fr",
                           is_contractor=True)
    order = Order.objects.create(client=client, contractor=contractor,
                                 title="Deck repair at 12 Elm St", province="ON",
                                 subtotal_cents=10_000, tax_cents=1_300, total_cents=11_300)
    return Payment.objects.create(order=order, payer=client, amount_cents=11_300,
                                  tax_cents=1_300, stripe_payment_intent_id="pi_1",
                                  status="succeeded", stripe_charge_id="ch_1")


def dispute(status: str, *, due_by: int | None = DUE, dispute_id: str = "dp_1") -> dict:
    """A dispute object as Stripe sends it (evidence holds the payer's personal data)."""
    return {"id": dispute_id, "object": "dispute", "amount": 11_300, "currency": "cad",
            "charge": "ch_1", "payment_intent": "pi_1", "reason": "product_not_received",
            "status": status, "created": int(time.time()) - 600, "livemode": False,
            "is_charge_refundable": False,
            "evidence": {"customer_name": "Pat Payer",
                         "customer_email_address": "payer@example.test",
                         "billing_address": "12 Elm St"},
            "evidence_details": {"due_by": due_by, "has_evidence": False,
                                 "past_due": False, "submission_count": 0}}


def deliver(*payloads, broker=None, worker=None) -> None:
    client = Client()
    for payload in payloads:
        assert post_event(client, payload).status_code == 200
    if worker is not None:
        drain(broker, worker)
    else:
        for row in StripeEvent.objects.filter(status="received").order_by("pk"):
            stripe_event_process(event_id=row.pk)


def staff_emails() -> list:
    return [m for m in mail.outbox if m.to == ["ops@example.test"]]


def order_disputed_in_admin(staff_client, order) -> bool:
    page = staff_client.get("/admin/marketplace/order/?disputed=yes").content.decode()
    return f"/admin/marketplace/order/{order.pk}/change/" in page


@pytest.mark.parametrize("closing, outcome", [("won", DisputeOutcome.WON),
                                               ("lost", DisputeOutcome.LOST)])
def test_created_updated_closed_through_the_worker(payment, broker, worker, staff_client,
                                                   closing, outcome):
    # When Stripe opens the dispute
    deliver(event("charge.dispute.created", dispute("needs_response")),
            broker=broker, worker=worker)

    # Then it is recorded open, the payment and the order flagged, staff and the
    # contractor told once
    row = Dispute.objects.get()
    assert (row.stripe_dispute_id, row.payment_id, row.status, row.reason, row.amount_cents,
            int(row.evidence_due_by.timestamp()), row.closed_at, row.outcome) == (
        "dp_1", payment.pk, DisputeStatus.NEEDS_RESPONSE, "product_not_received", 11_300,
        DUE, None, "")
    payment.refresh_from_db()
    assert payment.is_disputed and order_disputed_in_admin(staff_client, payment.order)
    assert [m.subject for m in staff_emails()] == [
        f"[Jobsite] Payment dispute opened: order #{payment.order_id}"]
    [opened] = EmailLog.objects.filter(kind="dispute_opened")
    assert opened.user_id == payment.order.contractor_id and opened.status == "sent"
    [notice] = [m for m in mail.outbox if getattr(m, "tags", None) == ["dispute_opened"]]
    assert notice.subject == f"Un client conteste le paiement de la commande n° " \
                             f"{payment.order_id}"

    # When it goes under review, then closes
    deliver(event("charge.dispute.updated", dispute("under_review")),
            event("charge.dispute.closed", dispute(closing)), broker=broker, worker=worker)

    row.refresh_from_db()
    assert (row.status, row.outcome) == (closing, outcome) and row.closed_at is not None
    payment.refresh_from_db()
    assert not payment.is_disputed and not order_disputed_in_admin(staff_client,
                                                                   payment.order)
    assert [m.subject for m in staff_emails()] == [
        f"[Jobsite] Payment dispute opened: order #{payment.order_id}",
        f"[Jobsite] Payment dispute closed ({outcome}): order #{payment.order_id}"]
    [closed] = EmailLog.objects.filter(kind="dispute_closed")
    assert closed.context["outcome"] == outcome
    assert EmailLog.objects.filter(kind="dispute_opened").count() == 1


def test_closed_before_created_ends_closed_and_a_late_update_changes_nothing(
        payment, broker, worker, monkeypatch):
    opened, closed = [], []
    monkeypatch.setattr(dispute_service, "ON_DISPUTE_OPENED", [opened.append])
    monkeypatch.setattr(dispute_service, "ON_DISPUTE_CLOSED", [closed.append])

    # One at a time, in this order (a worker's threads would take three at once in any).
    for payload in (event("charge.dispute.closed", dispute("lost")),
                    event("charge.dispute.created", dispute("needs_response")),
                    event("charge.dispute.updated", dispute("under_review",
                                                            due_by=DUE + 86_400))):
        deliver(payload, broker=broker, worker=worker)

    row = Dispute.objects.get()
    assert (row.status, row.outcome, int(row.evidence_due_by.timestamp())) == (
        DisputeStatus.LOST, DisputeOutcome.LOST, DUE)
    payment.refresh_from_db()
    assert not payment.is_disputed
    # The accounting hooks saw it open and close, once each, in that order
    assert [d.pk for d in opened] == [d.pk for d in closed] == [row.pk]
    # Staff and the contractor hear of it once: closed, with the outcome
    assert [m.subject for m in staff_emails()] == [
        f"[Jobsite] Payment dispute closed (lost): order #{payment.order_id}"]
    assert list(EmailLog.objects.values_list("kind", flat=True)) == ["dispute_closed"]


def test_repeated_deliveries_do_the_work_once(payment, broker, worker):
    created = event("charge.dispute.created", dispute("needs_response"))
    # The same event twice, and Stripe's own re-send of the same state under a new id
    deliver(created, created, event("charge.dispute.created", dispute("needs_response")),
            broker=broker, worker=worker)

    assert Dispute.objects.count() == 1
    assert len(staff_emails()) == 1
    assert EmailLog.objects.filter(kind="dispute_opened").count() == 1


def test_two_events_of_one_dispute_processed_at_once_make_one_row(payment, monkeypatch):
    opened = []
    monkeypatch.setattr(dispute_service, "ON_DISPUTE_OPENED", [opened.append])
    client = Client()
    post_event(client, event("charge.dispute.created", dispute("needs_response")))
    post_event(client, event("charge.dispute.updated", dispute("under_review")))
    outcomes = process_at_once(list(StripeEvent.objects.order_by("pk")
                                    .values_list("pk", flat=True)))

    assert outcomes == ["processed", "processed"]
    assert list(Dispute.objects.values_list("status", flat=True)) == ["under_review"]
    assert len(opened) == 1


def test_the_staff_email_holds_no_personal_data(payment, broker, worker):
    deliver(event("charge.dispute.created", dispute("needs_response")),
            broker=broker, worker=worker)
    deliver(event("charge.dispute.closed", dispute("won")), broker=broker, worker=worker)

    bodies = " ".join(m.subject + m.body for m in staff_emails())
    assert len(staff_emails()) == 2
    row = Dispute.objects.get()
    assert f"Dispute #{row.pk} (dp_1) on payment #{payment.pk}" in bodies
    assert "113.00 CAD" in bodies and "product_not_received" in bodies
    for personal in ("Pat", "payer@example.test", "pro@example.test", "Robin", "Elm",
                     "Deck repair"):
        assert personal not in bodies, personal


def test_an_order_without_contractor_tells_staff_only(payment, broker, worker):
    Order.objects.filter(pk=payment.order_id).update(contractor=None)

    deliver(event("charge.dispute.created", dispute("needs_response")),
            broker=broker, worker=worker)

    assert len(staff_emails()) == 1 and not EmailLog.objects.exists()


def test_a_dispute_on_an_unknown_payment_is_retried_not_dropped(payment):
    client = Client()
    post_event(client, event("charge.dispute.created",
                             {**dispute("needs_response"), "payment_intent": "pi_other"}))
    row = StripeEvent.objects.get()

    with pytest.raises(dispute_service.DisputePaymentUnknown):
        stripe_event_process(event_id=row.pk, final_attempt=False)

    row.refresh_from_db()
    assert row.status == "received" and not Dispute.objects.exists()


def test_staff_are_reminded_of_evidence_due_within_3_days(payment):
    soon = int(time.time()) + 2 * 86_400
    deliver(event("charge.dispute.created", dispute("needs_response", due_by=soon)),
            event("charge.dispute.created", dispute("needs_response", dispute_id="dp_2")))
    mail.outbox.clear()

    assert dispute_service.disputes_evidence_reminder() == 1

    [reminder] = staff_emails()
    first = Dispute.objects.get(stripe_dispute_id="dp_1")
    assert reminder.subject == "[Jobsite] 1 payment dispute(s) need evidence within 3 days"
    assert f"Dispute #{first.pk} (dp_1)" in reminder.body and "dp_2" not in reminder.body


@pytest.mark.parametrize("closing, returned_to", [("won", "1100"), ("lost", "5200")])
def test_a_dispute_posts_its_journal_entries_through_the_hooks(payment, closing, returned_to):
    from payments.models import JournalEntry, JournalLine

    deliver(event("charge.dispute.created", dispute("needs_response")),
            event("charge.dispute.closed", dispute(closing)))
    deliver(event("charge.dispute.closed", dispute(closing)))  # a replay: nothing more

    entries = JournalEntry.objects.filter(source_key__startswith="dispute:dp_1")
    assert sorted(entries.values_list("source_key", flat=True)) == [
        "dispute:dp_1:closed", "dispute:dp_1:opened"]
    lines = sorted(JournalLine.objects.filter(entry__in=entries).values_list(
        "entry__source_key", "account", "debit_cents", "credit_cents"))
    assert lines == sorted([
        ("dispute:dp_1:opened", "1200", 11_300, 0), ("dispute:dp_1:opened", "1100", 0, 11_300),
        ("dispute:dp_1:closed", returned_to, 11_300, 0),
        ("dispute:dp_1:closed", "1200", 0, 11_300)])


def test_an_inquiry_posts_nothing(payment):
    from payments.models import JournalEntry

    deliver(event("charge.dispute.created", dispute("warning_needs_response")),
            event("charge.dispute.closed", dispute("warning_closed")))
    assert not JournalEntry.objects.filter(source_key__startswith="dispute:").exists()


@pytest.mark.django_db(transaction=True)
def test_a_failed_event_retried_from_the_failed_job_list_is_processed(payment, broker, worker,
                                                                      staff_client,
                                                                      monkeypatch):
    """The dispute came for a payment we did not have yet: its last attempt fails and the
    job lands in the failed-job list; once the payment exists, staff press Retry and the
    event goes through its handler again (jobs.stateful: the event back to received)."""
    from django.urls import reverse

    from jobs.models import FailedJob
    from payments.tasks import stripe_event_process_task
    from tests.conftest import wait_until

    # No retries, so the first attempt is the last (the queue's are 8, up to 2 hours).
    monkeypatch.setitem(stripe_event_process_task.options, "max_retries", 0)
    intent = payment.stripe_payment_intent_id
    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id="pi_later")
    deliver(event("charge.dispute.created", dispute("needs_response")),
            broker=broker, worker=worker)
    wait_until(lambda: FailedJob.objects.exists())
    row = StripeEvent.objects.get()
    assert (row.status, row.last_error) == ("failed", "DisputePaymentUnknown")
    failed = FailedJob.objects.get()
    assert failed.actor_name == "stripe_event_process"

    Payment.objects.filter(pk=payment.pk).update(stripe_payment_intent_id=intent)
    response = staff_client.post(reverse("admin:jobs_failedjob_changelist"), {
        "action": "retry_selected", "_selected_action": [failed.pk]}, follow=True)
    assert response.status_code == 200
    drain(broker, worker)

    row.refresh_from_db()
    assert (row.status, row.attempts) == ("processed", 2)
    assert Dispute.objects.get().payment_id == payment.pk


def test_lost_notices_are_redriven_and_sent_once(payment, broker, worker):
    """The notify message never reached Redis (or Redis lost it): the platform finds the
    stage unfinished on the dispute row and sends it again, once."""
    from jobs.recovery import redrive_unfinished

    # given a dispute recorded while no worker runs, and its notify message lost
    worker.pause()
    deliver(event("charge.dispute.created", dispute("needs_response")))
    row = Dispute.objects.get()
    assert row.opened_notify_message_id and row.opened_notified_at is None
    broker.flush_all()

    # when the re-drive runs (twice: the second finds it queued) and the worker drains
    assert redrive_unfinished(cutoff_seconds=0) == 1
    assert redrive_unfinished(cutoff_seconds=0) == 0
    worker.resume()
    drain(broker, worker)

    # then staff and the contractor were told once, and nothing is left to re-drive
    assert len(staff_emails()) == 1
    assert EmailLog.objects.filter(kind="dispute_opened").count() == 1
    row.refresh_from_db()
    assert row.opened_notified_at is not None
    assert redrive_unfinished(cutoff_seconds=0) == 0


def test_notices_that_failed_are_sent_by_retry_from_the_failed_job_list(
        payment, broker, worker, staff_client, smtp_server, monkeypatch):
    """Staff's mail server was down for every attempt: the notice lands in the failed-job
    list; once it is back, Retry sends staff and the contractor one email each."""
    from django.urls import reverse

    from jobs.models import FailedJob
    from payments.tasks import dispute_notify_task
    from tests.conftest import wait_until

    monkeypatch.setitem(dispute_notify_task.options, "max_retries", 0)
    smtp_server.stop()
    deliver(event("charge.dispute.created", dispute("needs_response")),
            broker=broker, worker=worker)
    wait_until(lambda: FailedJob.objects.filter(actor_name="dispute_notify").exists())
    assert Dispute.objects.get().opened_notified_at is None

    smtp_server.start()
    failed = FailedJob.objects.get(actor_name="dispute_notify")
    response = staff_client.post(reverse("admin:jobs_failedjob_changelist"), {
        "action": "retry_selected", "_selected_action": [failed.pk]}, follow=True)
    assert response.status_code == 200
    drain(broker, worker)

    recipients = [m for m in smtp_server.handler.messages if b"ops@example.test" in m]
    assert len(recipients) == 1
    assert EmailLog.objects.filter(kind="dispute_opened", status="sent").count() == 1
    assert Dispute.objects.get().opened_notified_at is not None
    # Retry again: the stage is done, nothing is sent
    response = staff_client.post(reverse("admin:jobs_failedjob_changelist"), {
        "action": "retry_selected", "_selected_action": [failed.pk]}, follow=True)
    drain(broker, worker)
    assert len([m for m in smtp_server.handler.messages if b"ops@example.test" in m]) == 1
