"""Email goes out through every Django email backend, not only anymail's: the console
backend ``make run`` uses (through a real worker process, as a newcomer meets it), and
SMTP, file and locmem through a worker. Each email carries the same Message-ID on every
attempt."""

import re

import pytest
from django.core import mail

from jobs.models import FailedJob
from notifications.models import EmailLog, EmailStatus, Suppression
from notifications.services.delivery import email_message_id
from notifications.services.sending import send_email
from notifications.tasks import send_email_task
from tests.conftest import child_env, drain, wait_until, worker_ready
from tests.notifications.conftest import make_user

ORDER_CONTEXT = {"order_id": 9, "order_title": "Deck repair", "status": "in_progress"}
MESSAGE_ID = re.compile(r"^Message-ID: (<email-\d+\.[0-9a-f]{20}@[^>]+>)$", re.MULTILINE)


def status_of(log: EmailLog) -> str:
    return EmailLog.objects.values_list("status", flat=True).get(pk=log.pk)


@pytest.mark.django_db(transaction=True)
def test_make_runs_console_email_is_sent_by_a_real_worker(broker, manage_py):
    # Given the platform on make run's settings (config.settings, EMAIL_ESP unset: Django's
    # console backend) and a worker group as the Procfile starts it
    env = child_env(settings_module="config.settings", EMAIL_ESP=None)
    worker = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "2",
                       env=env, name="console-worker")
    worker_ready(worker)
    user = make_user(language="fr")

    # When an email is sent
    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)

    # Then the worker prints it and the row says sent: before, the console backend's
    # message had no anymail_status, the job failed and the row stayed "sending"
    wait_until(lambda: status_of(log) == EmailStatus.SENT, timeout=30)
    log.refresh_from_db()
    output = worker.output()
    assert "Subject: " in output and "Deck repair" in output, output[-2000:]
    assert "est maintenant en cours." in output  # the model's status label, in French
    assert MESSAGE_ID.search(output).group(1) == email_message_id(log)
    assert (log.attempts, log.esp_message_id, log.last_error) == (1, "", "")
    assert not FailedJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_smtp_delivery_keeps_the_message_id_across_a_retry(smtp_server, broker, worker,
                                                            monkeypatch):
    monkeypatch.setitem(send_email_task.options, "min_backoff", 1500)
    monkeypatch.setitem(send_email_task.options, "max_backoff", 1500)
    user = make_user()
    # Given the SMTP server down for the first attempt
    smtp_server.stop()
    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    wait_until(lambda: EmailLog.objects.get(pk=log.pk).attempts >= 1
               and status_of(log) == EmailStatus.QUEUED)
    assert EmailLog.objects.get(pk=log.pk).last_error == "ConnectionRefusedError"

    # When it is back, the retry sends it, with the Message-ID the first attempt had
    smtp_server.start()
    drain(broker, worker)
    log.refresh_from_db()
    assert (log.status, log.attempts) == (EmailStatus.SENT, 2)
    [received] = smtp_server.handler.messages
    assert f"Message-ID: {email_message_id(log)}".encode() in received


@pytest.mark.django_db(transaction=True)
def test_an_smtp_5xx_refusal_is_rejected_and_suppressed(smtp_server, broker, worker):
    user = make_user(email="refused@example.test")

    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)

    log.refresh_from_db()
    assert (log.status, log.attempts) == (EmailStatus.REJECTED, 1)
    assert log.last_error == "smtplib.SMTPRecipientsRefused"
    assert Suppression.objects.filter(email="refused@example.test").exists()
    assert FailedJob.objects.get().exception_type == "PermanentError"


@pytest.mark.django_db(transaction=True)
def test_file_backend_writes_the_email(settings, tmp_path, broker, worker):
    settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    settings.EMAIL_FILE_PATH = str(tmp_path)
    user = make_user()

    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)

    assert status_of(log) == EmailStatus.SENT
    [written] = list(tmp_path.iterdir())
    assert f"Message-ID: {email_message_id(log)}" in written.read_text()


@pytest.mark.django_db(transaction=True)
def test_locmem_backend_keeps_the_email(settings, broker, worker):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    mail.outbox = []
    user = make_user()

    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    drain(broker, worker)

    assert status_of(log) == EmailStatus.SENT
    [sent] = mail.outbox
    assert sent.extra_headers["Message-ID"] == email_message_id(log)
    assert sent.to == [user.email]
