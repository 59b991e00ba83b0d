"""The Stripe webhook endpoint and event processing, on the real view, real signatures,
real PostgreSQL, Redis and workers."""

import json
import threading
import time

import pytest
from django.core import mail
from django.test import Client

from audit.models import AuditLog
from jobs.encryption import payload_fernet
from notifications.models import EmailLog, PushLog
from payments.models import EventStatus, Payment, PaymentStatus, Receipt, StripeEvent
from payments.services.events import stripe_event_process
from tests.conftest import drain
from tests.payments.conftest import event, intent, post_event, process_at_once, signed

pytestmark = pytest.mark.django_db


def test_a_valid_event_is_stored_encrypted_and_processed_once(client, order, broker, worker):
    payload = event("payment_intent.succeeded", intent("pi_1", order=order))

    response = post_event(client, payload)

    assert response.status_code == 200 and response.json() == {"received": True,
                                                                "duplicate": False}
    row = StripeEvent.objects.get()
    assert (row.stripe_id, row.type, row.object_id, row.status) == (
        payload["id"], "payment_intent.succeeded", "pi_1", EventStatus.RECEIVED)
    assert "pi_1" not in row.payload and "Deck" not in row.payload  # encrypted
    assert json.loads(payload_fernet().decrypt(row.payload.encode())) == payload
    stripe_event_process(event_id=row.pk)
    payment = Payment.objects.get()
    assert (payment.status, payment.amount_cents, payment.order_id, payment.payer_id) == (
        PaymentStatus.SUCCEEDED, 11_300, order.pk, order.client_id)
    assert AuditLog.objects.filter(action="payment.succeeded").count() == 1
    row.refresh_from_db()
    assert row.status == EventStatus.PROCESSED and row.attempts == 1


def test_a_replay_answers_200_and_does_no_new_work(client, order, broker):
    payload = event("payment_intent.succeeded", intent("pi_1", order=order))
    assert post_event(client, payload).json()["duplicate"] is False
    queued = broker.do_qsize("payments")

    again = post_event(client, payload)

    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert StripeEvent.objects.count() == 1 and broker.do_qsize("payments") == queued


@pytest.mark.parametrize("case", ["bad-signature", "other-secret", "old-timestamp",
                                  "no-header", "not-json", "not-an-event", "no-type",
                                  "not-utf8"])
def test_bad_deliveries_get_400_and_nothing_is_stored(client, order, case, caplog):
    payload = json.dumps(event("payment_intent.succeeded", intent("pi_1", order=order)))
    headers = {"HTTP_STRIPE_SIGNATURE": signed(payload)}
    body = payload
    if case == "bad-signature":
        headers["HTTP_STRIPE_SIGNATURE"] = signed(payload.replace("pi_1", "pi_2"))
    elif case == "other-secret":
        headers["HTTP_STRIPE_SIGNATURE"] = signed(payload, secret="whsec_someone_else")
    elif case == "old-timestamp":
        headers["HTTP_STRIPE_SIGNATURE"] = signed(payload, timestamp=int(time.time()) - 301)
    elif case == "no-header":
        headers = {}
    elif case == "not-json":
        body = "{not json"
        headers["HTTP_STRIPE_SIGNATURE"] = signed(body)
    elif case == "not-an-event":
        body = json.dumps({"id": "evt_1", "object": "charge"})
        headers["HTTP_STRIPE_SIGNATURE"] = signed(body)
    elif case == "no-type":
        body = json.dumps({"id": "evt_1", "object": "event", "created": 1, "data": {}})
        headers["HTTP_STRIPE_SIGNATURE"] = signed(body)
    elif case == "not-utf8":
        body = b"\xff\xfe" + payload.encode()
        headers["HTTP_STRIPE_SIGNATURE"] = signed(payload)

    response = client.post("/webhooks/stripe/", data=body, content_type="application/json",
                           **headers)

    assert response.status_code == 400
    assert not StripeEvent.objects.exists() and not Payment.objects.exists()
    logged = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "stripe webhook rejected" in logged
    assert "pi_1" not in logged and "Deck" not in logged  # never the payload


def test_a_rotated_secret_accepts_both_secrets(client, order, settings):
    settings.STRIPE_WEBHOOK_SECRET = ["whsec_new", "whsec_old"]
    for n, secret in enumerate(["whsec_new", "whsec_old"]):
        payload = event("payment_intent.created", intent(f"pi_{n}", order=order))
        assert post_event(client, payload, secret=secret).status_code == 200
    assert StripeEvent.objects.count() == 2


def test_an_unhandled_type_is_recorded_as_ignored(client, order, broker):
    response = post_event(client, event("customer.created", {"id": "cus_1",
                                                             "object": "customer"}))
    assert response.status_code == 200
    row = StripeEvent.objects.get()
    assert (row.status, row.payload) == (EventStatus.IGNORED, "")
    assert broker.do_qsize("payments") == 0


def test_succeeded_before_created_ends_succeeded(client, order):
    succeeded = event("payment_intent.succeeded", intent("pi_1", order=order))
    created = event("payment_intent.created", intent("pi_1", order=order,
                                                      status="requires_payment_method"))
    failed = event("payment_intent.payment_failed", intent("pi_1", order=order,
                                                            status="requires_payment_method"))
    for payload in (succeeded, created, failed):
        post_event(client, payload)
    for row in StripeEvent.objects.order_by("pk"):
        stripe_event_process(event_id=row.pk)

    payment = Payment.objects.get()
    assert payment.status == PaymentStatus.SUCCEEDED
    assert AuditLog.objects.filter(resource_type="payments.payment").count() == 1


def test_a_failed_attempt_may_still_succeed(client, order):
    for payload in (event("payment_intent.payment_failed",
                          intent("pi_1", order=order, status="requires_payment_method")),
                    event("payment_intent.succeeded", intent("pi_1", order=order))):
        post_event(client, payload)
    for row in StripeEvent.objects.order_by("pk"):
        stripe_event_process(event_id=row.pk)
    assert list(AuditLog.objects.filter(resource_type="payments.payment")
                .order_by("pk").values_list("action", flat=True)) == [
        "payment.failed", "payment.succeeded"]


def test_refunds_only_grow(client, order):
    post_event(client, event("payment_intent.succeeded", intent("pi_1", order=order)))
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_1",
              "amount": 11_300}
    for refunded in (5_000, 3_000, 11_300, 5_000):  # a late, smaller total changes nothing
        post_event(client, event("charge.refunded", {**charge, "amount_refunded": refunded}))
    for row in StripeEvent.objects.order_by("pk"):
        stripe_event_process(event_id=row.pk)
    payment = Payment.objects.get()
    assert (payment.status, payment.refunded_cents) == (PaymentStatus.REFUNDED, 11_300)
    assert list(AuditLog.objects.filter(resource_type="payments.payment")
                .order_by("pk").values_list("action", flat=True)) == [
        "payment.succeeded", "payment.partially_refunded", "payment.refunded"]


@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_20_times_at_once_does_its_work_once(order, broker, worker,
                                                                      live_server):
    """20 concurrent deliveries through a real HTTP server and a real worker: one row,
    one payment update, one confirmation email, one push."""
    import urllib.request

    body = json.dumps(event("payment_intent.succeeded", intent("pi_1", order=order)))
    header = signed(body)
    statuses, barrier = [], threading.Barrier(20)

    def deliver():
        request = urllib.request.Request(f"{live_server.url}/webhooks/stripe/",
                                         data=body.encode(), method="POST", headers={
                                             "Content-Type": "application/json",
                                             "Stripe-Signature": header})
        barrier.wait()
        with urllib.request.urlopen(request, timeout=30) as response:
            statuses.append((response.status, json.loads(response.read())["duplicate"]))

    threads = [threading.Thread(target=deliver) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drain(broker, worker)

    assert sorted(statuses) == [(200, False)] + [(200, True)] * 19
    assert StripeEvent.objects.get().status == EventStatus.PROCESSED
    assert Payment.objects.get().status == PaymentStatus.SUCCEEDED
    assert AuditLog.objects.filter(action="payment.succeeded").count() == 1
    assert EmailLog.objects.filter(kind="payment_confirmation").count() == 1
    assert PushLog.objects.filter(kind="payment_confirmation").count() == 1
    assert len([m for m in mail.outbox if "payment" in m.subject.lower()]) == 1


@pytest.mark.django_db(transaction=True)
def test_one_event_handled_by_two_workers_at_once_changes_state_once(order):
    """Two processes of one stored event at the same instant (a redelivered message):
    the event row's lock makes the second find it processed."""
    client = Client()
    post_event(client, event("payment_intent.succeeded", intent("pi_1", order=order)))
    row = StripeEvent.objects.get()

    results = process_at_once([row.pk, row.pk])

    assert sorted(results) == ["processed", "processed"]
    assert AuditLog.objects.filter(action="payment.succeeded").count() == 1
    # One receipt; its job (no worker here) sends the one confirmation email.
    assert Receipt.objects.count() == 1
    assert PushLog.objects.filter(kind="payment_confirmation").count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_development_command_posts_a_signed_event_that_is_processed(order, live_server,
                                                                        broker, worker):
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("stripe_event", "payment_intent.succeeded", "--order", str(order.pk),
                 "--times", "2", "--url", f"{live_server.url}/webhooks/stripe/", stdout=out)
    drain(broker, worker)

    assert out.getvalue().splitlines() == [
        '200 {"received": true, "duplicate": false}',
        '200 {"received": true, "duplicate": true}']
    assert Payment.objects.get(order=order).status == PaymentStatus.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_the_development_command_opens_and_closes_a_dispute(order, live_server, broker,
                                                           worker):
    from io import StringIO

    from django.core.management import call_command

    from payments.models import Dispute

    url = f"{live_server.url}/webhooks/stripe/"
    for args in (("payment_intent.succeeded",), ("charge.dispute.created",),
                 ("charge.dispute.closed", "--outcome", "lost")):
        call_command("stripe_event", *args, "--order", str(order.pk), "--url", url,
                     stdout=StringIO())
        drain(broker, worker)

    dispute = Dispute.objects.get()
    assert (dispute.status, dispute.outcome, dispute.payment.order_id) == (
        "lost", "lost", order.pk)
    assert dispute.evidence_due_by is not None
    assert dispute.opened_notified_at and dispute.closed_notified_at
