"""ESP tracking webhooks → suppression list; one-click unsubscribe; the staff blacklist."""

import base64
import json
import re

import pytest
from django.core import mail

from audit.models import AuditLog
from notifications.models import (
    EmailKind,
    EmailLog,
    EmailPreference,
    EmailStatus,
    Suppression,
    SuppressionReason,
)
from notifications.services.sending import send_email
from tests.conftest import drain
from tests.notifications.conftest import make_user, postmark_ok, queued_messages

GOOD_AUTH = "esp-webhook:test-only-password"  # settings_test's ANYMAIL_WEBHOOK_SECRET


def basic(credentials: str) -> dict:
    token = base64.b64encode(credentials.encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


def postmark_bounce(address: str, message_id: str, bounce_type: str = "HardBounce") -> dict:
    # Shape of Postmark's bounce webhook (postmarkapp.com/developer/webhooks/bounce-webhook)
    return {
        "RecordType": "Bounce", "MessageStream": "outbound", "ID": 4323372036854775807,
        "Type": bounce_type, "TypeCode": 1, "Name": "Hard bounce", "Tag": "order_status",
        "MessageID": message_id, "Metadata": {"email_log_id": "1"}, "ServerID": 23,
        "Description": "The server was unable to deliver your message.",
        "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
        "Email": address, "From": "no-reply@jobsite.local",
        "BouncedAt": "2026-11-29T08:00:00Z", "DumpAvailable": True, "Inactive": True,
        "CanActivate": True, "Subject": "Order update",
    }


def sendgrid_events(address: str, event: str, **extra) -> list[dict]:
    # Shape of SendGrid's Event Webhook (a JSON array of events)
    return [{
        "email": address, "timestamp": 1795939200, "event": event,
        "sg_event_id": "sg-event-1", "sg_message_id": "sg-message-1.filter0001",
        "smtp-id": "<sg-message-1@ismtpd-001>", **extra,
    }]


def ses_notification(address: str, event: str, **body) -> tuple[str, dict]:
    """An Amazon SNS notification of an SES event, and the SNS headers it comes with."""
    ses_event = {
        "eventType": event, event.lower(): body,
        "mail": {"timestamp": "2026-11-29T08:00:00.000Z", "source": "no-reply@jobsite.local",
                 "messageId": "ses-message-1", "destination": [address], "headers": []},
    }
    sns = {
        "Type": "Notification", "MessageId": "sns-message-1",
        "TopicArn": "arn:aws:sns:ca-central-1:123456789012:jobsite-ses-events",
        "Message": json.dumps(ses_event), "Timestamp": "2026-11-29T08:00:01.000Z",
        "SignatureVersion": "1", "Signature": "c2lnbmF0dXJl",
        "SigningCertURL": "https://sns.ca-central-1.amazonaws.com/cert.pem",
        "UnsubscribeURL": "https://sns.ca-central-1.amazonaws.com/?Action=Unsubscribe",
    }
    headers = {"HTTP_X_AMZ_SNS_MESSAGE_TYPE": "Notification",
               "HTTP_X_AMZ_SNS_MESSAGE_ID": "sns-message-1"}
    return json.dumps(sns), headers


def ses_bounce(address: str, bounce_type: str = "Permanent") -> tuple[str, dict]:
    return ses_notification(address, "Bounce", bounceType=bounce_type,
                            bounceSubType="General", feedbackId="feedback-1",
                            bouncedRecipients=[{"emailAddress": address, "action": "failed",
                                                "status": "5.1.1",
                                                "diagnosticCode": "smtp; 550 5.1.1"}])


def ses_complaint(address: str) -> tuple[str, dict]:
    return ses_notification(address, "Complaint", complaintFeedbackType="abuse",
                            complainedRecipients=[{"emailAddress": address}])


@pytest.mark.django_db(transaction=True)
def test_bounce_webhook_suppresses_the_address_and_the_next_send(client, postmark, broker,
                                                                  worker):
    # Given an email delivered through Postmark
    user = make_user()
    postmark.expect_request("/email", method="POST").respond_with_json(
        postmark_ok(user.email, "pm-bounce-1"))
    context = {"order_id": 3, "order_title": "Roof", "status": "completed"}
    sent = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=context)
    drain(broker, worker)
    sent.refresh_from_db()
    assert sent.esp_message_id == "pm-bounce-1"

    # When Postmark posts a hard bounce for it
    response = client.post("/webhooks/anymail/postmark/tracking/",
                           data=json.dumps(postmark_bounce(user.email, "pm-bounce-1")),
                           content_type="application/json", **basic(GOOD_AUTH))

    # Then the address is suppressed and the email's row says bounced
    assert response.status_code == 200
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason, suppression.source) == (
        "ada@example.test", SuppressionReason.HARD_BOUNCE, "postmark")
    sent.refresh_from_db()
    assert sent.status == EmailStatus.BOUNCED
    # and the next email to it is not sent
    again = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=context)
    assert again.status == EmailStatus.SUPPRESSED
    assert EmailLog.objects.get(pk=again.pk).status == EmailStatus.SUPPRESSED
    assert queued_messages(broker) == 0
    assert len(postmark.log) == 1


@pytest.mark.django_db
def test_a_soft_bounce_and_a_delivery_suppress_nothing(client):
    address = "ada@example.test"
    for payload in (postmark_bounce(address, "m1", bounce_type="SoftBounce"),
                    {"RecordType": "Delivery", "MessageID": "m2", "Recipient": address,
                     "DeliveredAt": "2026-11-29T08:00:00Z", "Details": "ok", "Tag": "",
                     "ServerID": 1, "Metadata": {}}):
        response = client.post("/webhooks/anymail/postmark/tracking/",
                               data=json.dumps(payload), content_type="application/json",
                               **basic(GOOD_AUTH))
        assert response.status_code == 200
    assert Suppression.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(("event", "extra", "reason"), [
    ("bounce", {"type": "bounce", "reason": "550 5.1.1 unknown user", "status": "5.1.1"},
     SuppressionReason.HARD_BOUNCE),
    ("spamreport", {}, SuppressionReason.COMPLAINT),
])
def test_sendgrid_bounces_and_complaints_suppress(client, event, extra, reason):
    response = client.post("/webhooks/anymail/sendgrid/tracking/",
                           data=json.dumps(sendgrid_events("Bo@Example.test", event, **extra)),
                           content_type="application/json", **basic(GOOD_AUTH))
    assert response.status_code == 200
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason, suppression.source) == (
        "bo@example.test", reason, "sendgrid")


@pytest.mark.django_db
@pytest.mark.parametrize(("notification", "reason"), [
    (ses_bounce("Bo@Example.test"), SuppressionReason.HARD_BOUNCE),
    (ses_complaint("Bo@Example.test"), SuppressionReason.COMPLAINT),
])
def test_amazon_ses_bounces_and_complaints_suppress(client, notification, reason):
    body, headers = notification
    response = client.post("/webhooks/anymail/amazon_ses/tracking/", data=body,
                           content_type="text/plain", **headers, **basic(GOOD_AUTH))
    assert response.status_code == 200
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason, suppression.source) == (
        "bo@example.test", reason, "amazon_ses")


@pytest.mark.django_db
def test_amazon_ses_transient_bounce_is_soft(client):
    body, headers = ses_bounce("bo@example.test", bounce_type="Transient")
    response = client.post("/webhooks/anymail/amazon_ses/tracking/", data=body,
                           content_type="text/plain", **headers, **basic(GOOD_AUTH))
    assert response.status_code == 200
    assert Suppression.objects.count() == 0


@pytest.mark.django_db
def test_sendgrid_blocked_bounce_is_soft(client):
    events = sendgrid_events("bo@example.test", "bounce", type="blocked", reason="busy")
    response = client.post("/webhooks/anymail/sendgrid/tracking/", data=json.dumps(events),
                           content_type="application/json", **basic(GOOD_AUTH))
    assert response.status_code == 200
    assert Suppression.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("auth", [basic("esp-webhook:wrong"), basic("someone:else"), {}])
@pytest.mark.parametrize(("url", "payload", "headers"), [
    ("/webhooks/anymail/postmark/tracking/",
     json.dumps(postmark_bounce("ada@example.test", "m")), {}),
    ("/webhooks/anymail/sendgrid/tracking/",
     json.dumps(sendgrid_events("ada@example.test", "spamreport")), {}),
    ("/webhooks/anymail/amazon_ses/tracking/", *ses_complaint("ada@example.test")),
])
def test_wrong_webhook_credentials_are_refused_and_change_nothing(client, auth, url, payload,
                                                                  headers):
    response = client.post(url, data=payload, content_type="application/json", **headers,
                           **auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic realm=")
    assert Suppression.objects.count() == 0
    assert AuditLog.objects.count() == 0


def unsubscribe_link(message) -> str:
    url = message.extra_headers["List-Unsubscribe"].strip("<>")
    assert re.search(re.escape(url), message.alternatives[0][0])
    return url.removeprefix("http://127.0.0.1:8000")


@pytest.mark.django_db(transaction=True)
def test_the_unsubscribe_link_works_once_and_is_audited(client, broker, worker):
    # Given a user who received a review reminder
    user = make_user()
    send_email(kind=EmailKind.REVIEW_REMINDER, user_id=user.pk,
               context={"order_id": 5, "order_title": "Paint", "contractor_name": "Pat"})
    drain(broker, worker)
    path = unsubscribe_link(mail.outbox[0])

    # Opening the link (a GET, as link scanners do) changes nothing
    assert client.get(path).status_code == 200
    assert not EmailPreference.objects.filter(user=user, marketing=False).exists()

    # When the mail client posts the one-click unsubscribe
    response = client.post(path, data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")

    # Then marketing and digest email are off, and the change is audited
    assert response.status_code == 200
    preference = EmailPreference.objects.get(user=user)
    assert (preference.marketing, preference.digest) == (False, False)
    [entry] = AuditLog.objects.filter(action="email.consent_changed")
    assert (entry.resource_type, entry.resource_id, entry.actor_id) == (
        "marketplace.user", str(user.pk), user.pk)
    assert entry.metadata == {"marketing": False, "digest": False, "via": "unsubscribe_link"}
    # The same link does not work a second time
    assert client.post(path, data="List-Unsubscribe=One-Click",
                       content_type="application/x-www-form-urlencoded").status_code == 400
    assert AuditLog.objects.filter(action="email.consent_changed").count() == 1
    # A forged token is refused
    assert client.post(path[:-3] + "xx/").status_code == 400
    # Marketing email stops; transactional email continues
    reminder = send_email(kind=EmailKind.REVIEW_REMINDER, user_id=user.pk,
                          context={"order_id": 5, "order_title": "Paint", "contractor_name": "P"})
    assert reminder.status == EmailStatus.OPTED_OUT
    assert send_email(kind=EmailKind.PASSWORD_RESET, user_id=user.pk).status == (
        EmailStatus.QUEUED)
    assert queued_messages(broker) == 1


@pytest.mark.django_db
def test_staff_blacklist_an_address_in_admin_and_remove_it(staff_client):
    # When staff add an address to the blacklist
    response = staff_client.post("/admin/notifications/suppression/add/",
                                 {"email": "Spam@Example.test", "reason": "manual"})
    assert response.status_code == 302
    suppression = Suppression.objects.get()
    assert (suppression.email, suppression.reason, suppression.source) == (
        "spam@example.test", SuppressionReason.MANUAL, "admin")
    assert suppression.created_by.email == "staff@example.test"
    assert AuditLog.objects.filter(action="email.suppression_added",
                                   resource_id=str(suppression.pk)).count() == 1
    user = make_user("spam@example.test")
    assert send_email(kind=EmailKind.WELCOME, user_id=user.pk).status == EmailStatus.SUPPRESSED

    # When they remove it
    response = staff_client.post(f"/admin/notifications/suppression/{suppression.pk}/delete/",
                                 {"post": "yes"})
    assert response.status_code == 302
    assert Suppression.objects.count() == 0
    assert AuditLog.objects.filter(action="email.suppression_removed").count() == 1
    for page in ("suppression", "emaillog", "emailpreference", "notification"):
        assert staff_client.get(f"/admin/notifications/{page}/").status_code == 200
