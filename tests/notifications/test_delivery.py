"""Delivery through anymail's real Postmark backend against a local Postmark API:
transient errors retry, permanent ones do not, exhausted retries land in failed jobs."""

import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from werkzeug import Response

from jobs.models import FailedJob
from notifications.models import EmailKind, EmailLog, EmailStatus, Suppression
from notifications.services.delivery import (
    SENDING_STALE_AFTER,
    EmailDeliveryError,
    email_deliver,
)
from notifications.services.sending import send_email
from notifications.services.suppression import suppression_add
from tests.conftest import drain, wait_until
from tests.notifications.conftest import dead_letters, make_user, postmark_ok, queued_messages

ORDER_CONTEXT = {"order_id": 9, "order_title": "Deck repair", "status": "accepted"}


def assert_in_failed_jobs(log: EmailLog, exception_type: str) -> None:
    """The message is in the failed-job list (recorded when the worker rejects it)."""
    wait_until(lambda: FailedJob.objects.filter(message_id=log.message_id).exists())
    job = FailedJob.objects.get(message_id=log.message_id)
    assert (job.actor_name, job.queue_name) == ("send_email_task", "emails")
    assert job.exception_type.endswith(exception_type)


@pytest.mark.django_db(transaction=True)
def test_a_transient_esp_error_is_retried_then_sent(postmark, broker, worker, fast_retries):
    # Given an ESP that fails once with a 500, then accepts
    user = make_user()
    postmark.expect_ordered_request("/email", method="POST").respond_with_json(
        {"ErrorCode": 0, "Message": "Internal error"}, status=500)
    postmark.expect_ordered_request("/email", method="POST").respond_with_json(
        postmark_ok(user.email, "pm-0001"))

    # When an email is sent
    log = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)

    # Then it was retried once and sent
    log.refresh_from_db()
    assert (log.status, log.attempts, log.esp_message_id) == (EmailStatus.SENT, 2, "pm-0001")
    assert log.last_error == "anymail.exceptions.AnymailRequestsAPIError (HTTP 500)"
    assert len(postmark.log) == 2
    postmark.check_assertions()
    sent = json.loads(postmark.log[1][0].get_data())
    assert sent["To"] == user.email
    assert sent["Subject"] == 'Order #9 "Deck repair" is now accepted'
    assert sent["Tag"] == "order_status"
    assert dead_letters(broker) == []


INACTIVE = ("You tried to send to a recipient that has been marked as inactive.\n"
            "Found inactive addresses: ada@example.test.\n"
            "Inactive recipients are ones that have generated a hard bounce or a spam "
            "complaint. ")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("status", "body", "error", "suppressed"), [
    (422, {"ErrorCode": 406, "Message": INACTIVE},
     "anymail.exceptions.AnymailRecipientsRefused (HTTP 422)", True),
    (422, {"ErrorCode": 300, "Message": "Invalid 'To' address: 'ada@example.test'."},
     "anymail.exceptions.AnymailRecipientsRefused (HTTP 422)", True),
    (401, {"ErrorCode": 10, "Message": "Bad or missing Server API token."},
     "anymail.exceptions.AnymailRequestsAPIError (HTTP 401)", False),
])
def test_a_permanent_esp_error_is_not_retried(status, body, error, suppressed, postmark,
                                              broker, worker, fast_retries):
    # Given an ESP that refuses the email for good
    user = make_user()
    postmark.expect_request("/email", method="POST").respond_with_json(body, status=status)

    # When it is sent
    log = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)

    # Then one attempt was made, the row says rejected, and the job is dead-lettered
    log.refresh_from_db()
    assert (log.status, log.attempts, log.last_error) == (EmailStatus.REJECTED, 1, error)
    assert len(postmark.log) == 1
    assert len(dead_letters(broker)) == 1
    assert queued_messages(broker) == 0
    # A refused recipient goes on the suppression list; a refused request does not
    assert Suppression.objects.filter(email="ada@example.test").exists() is suppressed
    assert_in_failed_jobs(log, "PermanentError")


@pytest.mark.django_db(transaction=True)
def test_the_sixth_failed_attempt_lands_in_failed_jobs(postmark, broker, worker, fast_retries):
    # Given an ESP that always answers 503
    user = make_user()
    postmark.expect_request("/email", method="POST").respond_with_response(
        Response("Service Unavailable", status=503))

    # When an email is sent
    log = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)

    # Then it was tried 6 times (1 + 5 retries), marked failed, and dead-lettered
    log.refresh_from_db()
    assert (log.status, log.attempts) == (EmailStatus.FAILED, 6)
    assert log.last_error == "anymail.exceptions.AnymailRequestsAPIError (HTTP 503)"
    assert len(postmark.log) == 6
    [dead] = dead_letters(broker)
    assert log.message_id.encode() in dead
    assert queued_messages(broker) == 0
    assert_in_failed_jobs(log, "EmailDeliveryError")


@pytest.mark.django_db(transaction=True)
def test_a_failed_email_says_whether_the_esp_refused_the_connection_or_answered_5xx(
        settings, broker, worker, fast_retries, postmark):
    # Given one email to an ESP nobody listens for (a refused connection) ...
    user = make_user()
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": "http://127.0.0.1:1/"}
    refused = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)
    # ... and one to an ESP answering 503
    settings.ANYMAIL = {**settings.ANYMAIL, "POSTMARK_API_URL": postmark.url_for("/")}
    postmark.expect_request("/email", method="POST").respond_with_response(
        Response("Service Unavailable", status=503))
    unavailable = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk,
                             context=ORDER_CONTEXT)
    drain(broker, worker)

    # Then their failed-job records tell them apart by the types of the cause chain and
    # the HTTP status; before, both said only "ESP error AnymailRequestsAPIError" and the
    # scrubber had turned urllib3's exception names into [secret]
    for log in (refused, unavailable):
        log.refresh_from_db()
        assert_in_failed_jobs(log, "EmailDeliveryError")
    no_route = FailedJob.objects.get(message_id=refused.message_id)
    down = FailedJob.objects.get(message_id=unavailable.message_id)
    assert ("AnymailRequestsAPIError <- requests.exceptions.ConnectionError <- "
            "urllib3.exceptions.MaxRetryError" in no_route.exception_message)
    assert ("urllib3.exceptions.NewConnectionError <- ConnectionRefusedError"
            in no_route.exception_message)
    assert "[secret]" not in no_route.exception_message
    assert "anymail.exceptions.AnymailRequestsAPIError (HTTP 503)" in down.exception_message
    assert "requests.exceptions" not in down.exception_message
    for job in (no_route, down):
        assert job.traceback.startswith("Exception chain: ")
        assert "ada@example.test" not in job.exception_message + job.traceback


@pytest.mark.django_db(transaction=True)
def test_delivery_is_idempotent_and_skips_an_address_suppressed_meanwhile(broker, worker):
    # Given a queued email whose address is suppressed before the worker gets to it
    user = make_user()
    log = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=ORDER_CONTEXT)
    suppression_add(email="ADA@example.test", reason="hard_bounce", source="postmark")

    drain(broker, worker)

    log.refresh_from_db()
    assert (log.status, log.attempts) == (EmailStatus.SUPPRESSED, 1)
    assert mail.outbox == []
    # A second delivery of the same message changes nothing (at-least-once delivery)
    assert email_deliver(email_log_id=log.pk).attempts == 1
    assert email_deliver(email_log_id=10**9) is None


@pytest.mark.django_db(transaction=True)
def test_a_fresh_claim_makes_a_second_delivery_retry_and_a_stale_one_is_taken_over(broker):
    # Given an email another worker claimed a moment ago
    user = make_user()
    log = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=ORDER_CONTEXT)
    EmailLog.objects.filter(pk=log.pk).update(status=EmailStatus.SENDING, attempts=1,
                                              last_attempt_at=timezone.now())

    # When the broker delivers the message again, it is not sent twice but retried later
    with pytest.raises(EmailDeliveryError, match="being sent by another worker"):
        email_deliver(email_log_id=log.pk)
    assert mail.outbox == []

    # Once that claim is older than an attempt can last, the next delivery takes over
    EmailLog.objects.filter(pk=log.pk).update(
        last_attempt_at=timezone.now() - SENDING_STALE_AFTER - timedelta(seconds=1))
    delivered = email_deliver(email_log_id=log.pk, message_id="m-2")
    assert (delivered.status, delivered.attempts) == (EmailStatus.SENT, 2)
    assert EmailLog.objects.get(pk=log.pk).message_id == "m-2"
    assert len(mail.outbox) == 1
