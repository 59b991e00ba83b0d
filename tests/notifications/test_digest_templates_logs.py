"""The daily digest, the template system check, and no personal data in logs."""

import json
import logging
import shutil
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs.logging import JsonFormatter
from notifications.checks import check_email_templates, html_problems, template_problems
from notifications.models import EmailKind, EmailLog, EmailStatus, Notification
from notifications.rendering import email_engine
from notifications.services.consent import email_preference_update
from notifications.services.sending import send_email
from notifications.tasks import SCHEDULES, notifications_daily_digest
from tests.conftest import drain
from tests.notifications.conftest import dead_letters, make_user, postmark_ok


@pytest.mark.django_db(transaction=True)
def test_daily_digest_summarises_unread_notifications_of_the_last_day(broker, worker):
    now = timezone.now()
    # Given a user with two unread notifications today, one read, one unread but old
    reader = make_user("reader@example.test", language="fr", first_name="Rémi")
    Notification.objects.create(user=reader, kind="quote", title="Nouvelle soumission",
                                body="Pro Plumbing a envoyé une soumission.")
    Notification.objects.create(user=reader, kind="payment", title="Paiement <reçu>",
                                is_important=True)
    Notification.objects.create(user=reader, kind="chat", title="Déjà lu", is_read=True)
    Notification.objects.create(user=reader, kind="chat", title="Trop ancien",
                                created_at=now - timedelta(days=2))
    # and users who get nothing: no unread notifications; opted out of the digest
    make_user("quiet@example.test")
    opted_out = make_user("optout@example.test")
    Notification.objects.create(user=opted_out, kind="chat", title="Hidden")
    email_preference_update(user=opted_out, digest=False, via="settings_page")

    # When the 06:00 digest actor runs through the real worker
    notifications_daily_digest.send()
    drain(broker, worker)

    # Then exactly one digest went out, to the reader, with the two unread items
    [message] = mail.outbox
    assert message.to == ["reader@example.test"]
    assert message.subject == "Vous avez 2 notifications non lues"
    html = message.alternatives[0][0]
    assert html.index("<strong>Paiement &lt;reçu&gt;</strong>") < html.index(
        "Nouvelle soumission")
    assert "Pro Plumbing a envoyé une soumission." in message.body
    for absent in ("Déjà lu", "Trop ancien", "Hidden"):
        assert absent not in message.body and absent not in html
    assert "List-Unsubscribe" in message.extra_headers
    log = EmailLog.objects.get(kind=EmailKind.DAILY_DIGEST)
    assert (log.user_id, log.status, log.context["unread_count"]) == (
        reader.pk, EmailStatus.SENT, 2)

    # A second run the same day sends no second digest
    notifications_daily_digest.send()
    drain(broker, worker)
    assert len(mail.outbox) == 1


def test_the_digest_is_scheduled_daily_at_six():
    [spec] = SCHEDULES
    assert (spec.actor_name, spec.cron, spec.time_zone) == (
        "notifications_daily_digest", "0 6 * * *", "America/Toronto")


def test_every_kind_has_every_template_part_in_both_languages_and_renders_cleanly():
    assert template_problems() == []
    assert check_email_templates() == []


@pytest.fixture
def broken_templates(tmp_path, settings):
    """A copy of the templates that the test may damage."""
    shutil.copytree(settings.BASE_DIR / "templates", tmp_path / "templates")
    settings.BASE_DIR = tmp_path
    email_engine.cache_clear()
    yield tmp_path / "templates" / "email"
    email_engine.cache_clear()


def test_the_template_check_reports_missing_broken_and_unresolved(broken_templates):
    (broken_templates / "fr" / "welcome.txt").unlink()
    (broken_templates / "en" / "order_status.subject.txt").write_text("{% if %}")
    html = broken_templates / "en" / "payment_confirmation.html"
    html.write_text(html.read_text().replace("{{ amount }}", "{{ amount_typo }}"))
    text = broken_templates / "fr" / "review_reminder.txt"
    text.write_text(text.read_text().replace("{{ order_title }}", "{{ order.title }}"))
    base = broken_templates / "layout.html"  # the HTML layout both languages fill in
    base.write_text(base.read_text().replace("</table>\n</td></tr>\n</table>", "</td></tr>"))

    problems = template_problems()

    assert "email/fr/welcome.txt is missing" in problems
    assert any(p.startswith("email/en/order_status.subject.txt does not compile") for p in
               problems)
    assert "payment_confirmation/en html: unresolved {{ amount_typo }}" in problems
    assert "review_reminder/fr text: unresolved {{ order.title }}" in problems
    assert "welcome/en html: </td> closes table" in problems
    assert [e.id for e in check_email_templates()] == ["notifications.E001"] * len(problems)


def test_html_well_formedness():
    assert html_problems("<!DOCTYPE html><html><body><p>a<br>b</p></body></html>") == []
    assert html_problems("<!DOCTYPE html><html><body><p><b>x</p></body></html>") == [
        "</p> closes b"]
    assert html_problems("<html><div>") == ["missing <!DOCTYPE html>", "<html> never closed",
                                            "<div> never closed"]


@pytest.mark.django_db(transaction=True)
def test_no_personal_data_in_logs_across_send_retry_and_failure(
        caplog, postmark, broker, worker, fast_retries):
    # Given a user with a distinctive address and name
    address, name = "zelda.quux@private.example", "Zelda"
    user = make_user(address, first_name=name)
    user.last_name = "Quuxington"
    user.save()
    attempts: dict[str, int] = {}

    def esp(request):
        from werkzeug import Response
        tag = json.loads(request.get_data())["Tag"]
        attempts[tag] = attempts.get(tag, 0) + 1
        if tag == "welcome" and attempts[tag] == 1 or tag == "order_status":
            return Response("upstream down for " + address, status=503)
        if tag == "password_reset":  # a refusal (422) that quotes the address
            return Response(json.dumps({"ErrorCode": 300, "Message":
                                        f"Invalid 'Reply-To' address: '{address}'."}),
                            status=422, content_type="application/json")
        return Response(json.dumps(postmark_ok(address, "pm-ok")),
                        content_type="application/json")

    postmark.expect_request("/email", method="POST").respond_with_handler(esp)
    # Everything our code, Dramatiq, anymail and the HTTP client log, at DEBUG
    # (django.db.backends stays at INFO, as in settings; set first, because set_level
    # also sets the capture handler's level).
    caplog.set_level(logging.INFO, logger="django.db.backends")
    for name in ("", "notifications", "jobs", "dramatiq", "anymail", "urllib3", "django"):
        caplog.set_level(logging.DEBUG, logger=name)

    # When a send is retried then sent, another fails for good, a third exhausts retries
    send_email(kind=EmailKind.WELCOME, user_id=user.pk)
    send_email(kind=EmailKind.PASSWORD_RESET, user_id=user.pk)
    send_email(kind=EmailKind.ORDER_STATUS, user_id=user.pk,
               context={"order_id": 1, "order_title": "Fence", "status": "open"})
    drain(broker, worker)

    # Then the cycle happened
    assert attempts == {"welcome": 2, "password_reset": 1, "order_status": 6}
    assert sorted(EmailLog.objects.values_list("status", flat=True)) == [
        EmailStatus.FAILED, EmailStatus.REJECTED, EmailStatus.SENT]
    # and no log line (message, extras, traceback) holds the address, name or a token
    sent = [json.loads(r.get_data()) for r, _ in postmark.log]
    secrets = {address, name, "Quuxington", "private.example"}
    for body in sent:
        for link in body["HtmlBody"].split('href="')[1:]:
            link = link.split('"', 1)[0]
            if "reset-password" in link or "unsubscribe" in link:
                secrets.add(link.rstrip("/").rsplit("/", 1)[-1])
    assert len(secrets) == 6  # the reset token and the unsubscribe token were found
    formatter = JsonFormatter()
    logged = "\n".join(formatter.format(record) for record in caplog.records)
    for line in ("email queued", "email sent", "email rejected", "email failed",
                 "Retries exceeded", "job failed"):
        assert line in logged
    for secret in secrets:
        assert secret.lower() not in logged.lower()
    # nor do the dead-lettered messages kept in Redis (their stored tracebacks)
    assert len(dead_letters(broker)) == 2
    for dead in dead_letters(broker):
        for secret in secrets:
            assert secret.lower().encode() not in dead.lower()
