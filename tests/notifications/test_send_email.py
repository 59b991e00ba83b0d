"""send_email → real worker → anymail: every kind and language, sanitization, limits."""

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from prometheus_client import REGISTRY

from marketplace.models import User
from notifications import tokens
from notifications.kinds import EmailContentError
from notifications.models import EmailKind, EmailLog, EmailStatus
from notifications.services.sending import InvalidRecipient, send_email
from tests.conftest import drain
from tests.notifications.conftest import make_user, queued_messages

SITE = "http://127.0.0.1:8000"
ORDER = {"order_id": 42, "order_title": "Fix the kitchen sink"}
CONTEXTS = {
    EmailKind.WELCOME: {},
    EmailKind.EMAIL_VERIFICATION: {},
    EmailKind.PASSWORD_RESET: {},
    EmailKind.ORDER_STATUS: {**ORDER, "status": "in_progress"},
    EmailKind.PAYMENT_CONFIRMATION: {**ORDER, "amount_cents": 123456, "currency": "CAD"},
    EmailKind.REVIEW_REMINDER: {**ORDER, "contractor_name": "Pro Plumbing"},
}
SUBJECTS = {
    "en": {
        EmailKind.WELCOME: "Welcome to Jobsite",
        EmailKind.EMAIL_VERIFICATION: "Confirm your email address",
        EmailKind.PASSWORD_RESET: "Reset your Jobsite password",
        EmailKind.ORDER_STATUS: 'Order #42 "Fix the kitchen sink" is now in progress',
        EmailKind.PAYMENT_CONFIRMATION: "Payment received for order #42",
        EmailKind.REVIEW_REMINDER: "How did Pro Plumbing do?",
    },
    "fr": {
        EmailKind.WELCOME: "Bienvenue sur Jobsite",
        EmailKind.EMAIL_VERIFICATION: "Confirmez votre adresse courriel",
        EmailKind.PASSWORD_RESET: "Réinitialisez votre mot de passe Jobsite",
        EmailKind.ORDER_STATUS:
            "La commande n° 42 « Fix the kitchen sink » est maintenant en cours",
        EmailKind.PAYMENT_CONFIRMATION: "Paiement reçu pour la commande n° 42",
        EmailKind.REVIEW_REMINDER: "Comment Pro Plumbing s'en est-il tiré?",
    },
}
FIXED_LINKS = {
    EmailKind.WELCOME: f"{SITE}/",
    EmailKind.ORDER_STATUS: f"{SITE}/orders/42",
    EmailKind.PAYMENT_CONFIRMATION: f"{SITE}/orders/42/receipt",
    EmailKind.REVIEW_REMINDER: f"{SITE}/orders/42/review",
}
GREETING = {"en": "Hello Ada,", "fr": "Bonjour Ada,"}


def html_links(html: str) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', html))


def sent_by_kind() -> dict[str, mail.EmailMessage]:
    return {message.tags[0]: message for message in mail.outbox}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("language", ["en", "fr"])
def test_each_kind_renders_and_sends_in_the_users_language(language, broker, worker):
    # Given a user who reads `language`
    user = make_user(language=language)

    # When one email of every kind is sent through the real worker
    logs = {kind: send_email(kind=kind, user_id=user.pk, context=context)
            for kind, context in CONTEXTS.items()}
    drain(broker, worker)

    # Then each went out once, in that language, with its subject, links and parts
    sent = sent_by_kind()
    assert sorted(sent) == sorted(CONTEXTS)
    for kind, log in logs.items():
        log.refresh_from_db()
        message = sent[kind]
        assert log.status == EmailStatus.SENT
        assert log.attempts == 1
        assert log.esp_message_id == str(mail.outbox.index(message))
        assert message.to == ["ada@example.test"]
        assert message.subject == SUBJECTS[language][kind]
        assert message.body.startswith(GREETING[language])
        html = message.alternatives[0][0]
        assert message.alternatives[0][1] == "text/html"
        assert f'<html lang="{language}">' in html
        links = html_links(html)
        if kind in FIXED_LINKS:
            assert FIXED_LINKS[kind] in links
            assert FIXED_LINKS[kind] in message.body
        transactional = kind not in (EmailKind.WELCOME, EmailKind.REVIEW_REMINDER)
        unsubscribe = [link for link in links if "/email/unsubscribe/" in link]
        if transactional:
            assert unsubscribe == []
            assert "List-Unsubscribe" not in message.extra_headers
        else:
            assert len(unsubscribe) == 1
            assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe[0]}>"
            assert message.extra_headers["List-Unsubscribe-Post"] == (
                "List-Unsubscribe=One-Click")

    # The verification link carries a signed token that names this user
    verify = next(link for link in html_links(sent["email_verification"].alternatives[0][0])
                  if "/account/verify-email/" in link)
    assert tokens.email_verification_user(verify.split("token=", 1)[1]) == user
    # The reset link carries Django's expiring password-reset token for this user
    reset = next(link for link in html_links(sent["password_reset"].alternatives[0][0])
                 if "/account/reset-password/" in link)
    uidb64, token = reset.rstrip("/").split("/")[-2:]
    assert force_str(urlsafe_base64_decode(uidb64)) == str(user.pk)
    assert default_token_generator.check_token(user, token)
    amount = "$1,234.56 CAD" if language == "en" else "1\u00a0234,56\u00a0$ CAD"
    assert amount in sent["payment_confirmation"].body


@pytest.mark.django_db
def test_verification_token_expires_and_dies_with_an_address_change(settings):
    user = make_user()
    token = tokens.email_verification_token(user)
    assert tokens.email_verification_user(token) == user

    settings.EMAIL_VERIFICATION_MAX_AGE = -1
    with pytest.raises(tokens.InvalidToken):
        tokens.email_verification_user(token)

    settings.EMAIL_VERIFICATION_MAX_AGE = 3600
    User.objects.filter(pk=user.pk).update(email="new@example.test")
    with pytest.raises(tokens.InvalidToken):
        tokens.email_verification_user(token)
    with pytest.raises(tokens.InvalidToken):
        tokens.email_verification_user(token[:-2] + "xx")


@pytest.mark.django_db(transaction=True)
def test_xss_in_a_name_is_escaped_and_control_characters_are_stripped(broker, worker):
    # Given a user and an order title carrying markup and control characters
    user = make_user(first_name="<script>alert('x')</script>\x1b\u202e")
    log = send_email(kind=EmailKind.REVIEW_REMINDER, user_id=user.pk, context={
        "order_id": 7, "order_title": "<img src=x onerror=alert(1)>",
        "contractor_name": "Bob\x07 & <b>Sons</b>",
    })

    # When it is delivered
    drain(broker, worker)

    # Then the HTML shows the values as text, never as markup
    [message] = mail.outbox
    html = message.alternatives[0][0]
    assert "<script>" not in html and "<img src=x" not in html and "<b>Sons" not in html
    assert "Hello &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;," in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Bob &amp; &lt;b&gt;Sons&lt;/b&gt;" in html
    # and the control characters are gone from every part
    for text in (html, message.body, message.subject):
        assert not {"\x1b", "\u202e", "\x07"} & set(text)
    assert message.subject == "How did Bob & <b>Sons</b> do?"
    assert EmailLog.objects.get(pk=log.pk).context["contractor_name"] == "Bob & <b>Sons</b>"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("title", ["Sink\r\nBcc: victim@example.test", "Sink\nX: y", "A\rB"])
def test_crlf_in_a_subject_value_is_rejected_and_nothing_is_enqueued(title, broker):
    user = make_user()

    with pytest.raises(EmailContentError, match="order_title must not contain line breaks"):
        send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk,
                   context={"order_id": 1, "order_title": title, "status": "open"})

    assert EmailLog.objects.count() == 0
    assert queued_messages(broker) == 0


@pytest.mark.django_db(transaction=True)
def test_an_invalid_recipient_address_is_a_clear_error_and_nothing_is_enqueued(broker):
    user = User.objects.create(email="not an address@", first_name="X")

    with pytest.raises(InvalidRecipient, match=f"User #{user.pk} has no valid email address"):
        send_email(kind=EmailKind.WELCOME, user_id=user.pk)

    assert EmailLog.objects.count() == 0
    assert queued_messages(broker) == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("kind", "context", "error"), [
    ("newsletter", {}, "Unknown email kind 'newsletter'"),
    (EmailKind.WELCOME, {"order_id": 1}, "Unknown context for welcome: order_id"),
    (EmailKind.ORDER_STATUS, {"order_id": 1, "status": "open"},
     "order_status needs context value 'order_title'"),
    (EmailKind.ORDER_STATUS, {"order_id": "1", "order_title": "t", "status": "open"},
     "order_id must be an integer"),
    (EmailKind.DAILY_DIGEST, {"notification_ids": ["x"], "unread_count": 1},
     "notification_ids must be a list of ids"),
])
def test_bad_context_is_a_clear_error(kind, context, error, broker):
    user = make_user()
    with pytest.raises(EmailContentError, match=re.escape(error)):
        send_email(kind=kind, user_id=user.pk, context=context)
    assert EmailLog.objects.count() == 0
    assert queued_messages(broker) == 0


@pytest.mark.django_db(transaction=True)
def test_the_51st_email_in_an_hour_is_not_sent_and_is_counted(broker):
    # Given a user who was sent 50 emails this hour
    user = make_user()
    other = make_user("other@example.test")
    before = REGISTRY.get_sample_value(
        "jobsite_emails_rate_limited_total", {"kind": "order_status"}) or 0
    context = {"order_id": 1, "order_title": "t", "status": "open"}
    first_50 = [send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=context)
                for _ in range(50)]
    assert {log.status for log in first_50} == {EmailStatus.QUEUED}

    # When a 51st is asked for
    over = send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk, context=context)

    # Then it is recorded as rate limited, not enqueued, and counted
    assert over.status == EmailStatus.RATE_LIMITED
    assert EmailLog.objects.get(pk=over.pk).status == EmailStatus.RATE_LIMITED
    assert queued_messages(broker) == 50
    assert REGISTRY.get_sample_value(
        "jobsite_emails_rate_limited_total", {"kind": "order_status"}) == before + 1
    # and another user is not affected
    assert send_email(kind=EmailKind.ORDER_STATUS, user_id=other.pk,
                      context=context).status == EmailStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_staff_send_a_verification_link_from_the_user_admin(staff_client, broker, worker):
    from django.urls import reverse

    from tests.conftest import drain

    user = User.objects.create_user("newcomer@example.test", "pw-newcomer-1")
    no_address = User.objects.create_user("x@example.test", "pw-x-12345")
    User.objects.filter(pk=no_address.pk).update(email="not-an-address")

    response = staff_client.post(reverse("admin:marketplace_user_changelist"), {
        "action": "send_verification_email", "_selected_action": [user.pk, no_address.pk],
    }, follow=True)
    drain(broker, worker)

    assert "Email verification email: 1 no valid address, 1 queued." in response.content.decode()
    [sent] = mail.outbox
    assert sent.to == ["newcomer@example.test"]
    assert "/account/verify-email/?token=" in sent.body
