"""Nothing committed is lost and nothing is sent twice unnoticed, with real processes
breaking underneath: worker processes sending through a real SMTP server that counts
every email, a Redis server of the test's own that fails and loses its data, and the
database behind a TCP proxy the test cuts."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest
from django.conf import settings
from django.urls import reverse

from jobs.models import BrokerEpoch, FailedJob, FailedJobStatus
from notifications.models import EmailLog, EmailStatus
from notifications.services.delivery import email_message_id
from notifications.services.sending import send_email
from tests.conftest import (
    SmtpServer,
    TcpProxy,
    child_database_url,
    child_env,
    wait_until,
    worker_ready,
)
from tests.notifications.conftest import make_user

ORDER_CONTEXT = {"order_id": 9, "order_title": "Deck repair", "status": "accepted"}
# Recovery on quick timings, so a test waits seconds where production waits a minute.
FAST_RECOVERY = {"BROKER_MAINTENANCE_SECONDS": "0.5", "BROKER_HEARTBEAT_TIMEOUT_SECONDS": "3",
                 "REDRIVE_AFTER_SECONDS": "2", "REDRIVE_EVERY_SECONDS": "1"}


@pytest.fixture
def smtp():
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


def statuses() -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in EmailLog.objects.values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


def all_sent(count: int) -> bool:
    return EmailLog.objects.filter(status=EmailStatus.SENT).count() == count


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    """Run ``code`` in a ``manage.py shell`` process with ``env``."""
    return subprocess.run([sys.executable, "manage.py", "shell", "-c", textwrap.dedent(code)],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.django_db(transaction=True)
def test_redis_failing_between_the_checks_and_the_commit_loses_no_email(
        own_redis, smtp, manage_py):
    # Given a web process whose Redis dies after send_email's checks, before the commit
    users = [make_user(f"user{i}@example.test") for i in range(5)]
    env = child_env(REDIS_URL=own_redis.url, TEST_REDIS_URL=own_redis.url, **smtp.env(),
                    **FAST_RECOVERY)
    done = run_python(f"""
        import redis
        from django.db import transaction
        from notifications.services.sending import send_email
        try:
            with transaction.atomic():
                for user_id in {[u.pk for u in users]}:
                    send_email(kind="order_status", user_id=user_id, context={ORDER_CONTEXT})
                redis.Redis(port={own_redis.port}).shutdown(save=True)  # Redis goes down
        except redis.ConnectionError:
            print("ConnectionError after the commit")
    """, env)
    assert "ConnectionError after the commit" in done.stdout, done.stderr
    # the rows are committed, their messages never reached Redis
    assert statuses() == {EmailStatus.QUEUED: 5}
    own_redis.process.wait()

    # When Redis is back (with its data) and a worker runs
    own_redis.start()
    worker = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "2",
                       env=env, name="worker")
    back_at = time.time()

    # Then every email is re-driven and sent, once (before: all 5 stayed queued for good)
    wait_until(lambda: all_sent(5), timeout=60)
    assert time.time() - back_at < 60
    assert sorted(smtp.handler.message_ids()) == sorted(
        email_message_id(log) for log in EmailLog.objects.all())
    assert len(smtp.handler.messages) == 5
    worker.stop()


@pytest.mark.django_db(transaction=True)
def test_redis_restarting_without_its_data_is_reported_and_loses_no_email(
        own_redis, smtp, manage_py):
    count = 200
    users = [make_user(f"user{i}@example.test") for i in range(count // 40 + 1)]
    env = child_env(REDIS_URL=own_redis.url, TEST_REDIS_URL=own_redis.url, **smtp.env(),
                    STAFF_ALERT_EMAILS="ops@jobsite.test", **FAST_RECOVERY)
    # Given a platform that has run (PostgreSQL knows its Redis epoch) ...
    first = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "2",
                      env=env, name="first")
    wait_until(lambda: BrokerEpoch.objects.exists(), timeout=30)
    first.stop()
    # ... and emails queued in Redis while no worker runs
    done = run_python(f"""
        from django.db import transaction
        from notifications.services.sending import send_email
        ids = {[u.pk for u in users]}
        with transaction.atomic():
            for i in range({count}):
                send_email(kind="order_status", user_id=ids[i // 40], context={ORDER_CONTEXT})
    """, env)
    assert done.returncode == 0, done.stderr
    assert statuses() == {EmailStatus.QUEUED: count}

    # When Redis restarts with its data gone, and the workers start again
    own_redis.restart(keep_data=False)
    manage_py("runworkergroup", "high", "--processes", "1", "--threads", "4", env=env,
              name="after")

    # Then the loss is recorded, staff are told, every email is sent once (before: 678 of
    # 1,000 stayed queued for good), and health reports it
    wait_until(lambda: all_sent(count), timeout=90)
    epoch = BrokerEpoch.objects.get(data_lost_at__isnull=False)
    assert epoch.redriven == count
    wait_until(lambda: len(smtp.handler.messages) == count + 1, timeout=10)
    assert smtp.handler.subjects().count("[Jobsite] Redis lost its data") == 1
    assert len(set(smtp.handler.message_ids())) == count + 1
    health = subprocess.run([sys.executable, "manage.py", "jobs_health", "--json"],
                            cwd=settings.BASE_DIR, env={**env, "HEALTH_MIN_WORKERS": "0"},
                            capture_output=True, text=True, timeout=60)
    assert "Redis lost its data" in health.stdout


@pytest.mark.django_db(transaction=True)
def test_retry_from_admin_sends_a_failed_email_exactly_once(smtp, broker, manage_py,
                                                            staff_client):
    # Given the mail server refusing every message, and a worker
    smtp.handler.data_reply = "554 5.3.0 Service unavailable"
    manage_py("runworkergroup", "high", "--processes", "1", "--threads", "2",
              env=child_env(**smtp.env()), name="worker")
    user = make_user()
    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    wait_until(lambda: FailedJob.objects.filter(status=FailedJobStatus.FAILED).exists(),
               timeout=30)
    log.refresh_from_db()
    assert log.status == EmailStatus.REJECTED and smtp.handler.messages == []

    # When the mail server is back and staff press Retry in admin
    smtp.handler.data_reply = "250 Message accepted"
    failed = FailedJob.objects.get()
    response = staff_client.post(reverse("admin:jobs_failedjob_changelist"), {
        "action": "retry_selected", "_selected_action": [failed.pk]}, follow=True)
    assert "a worker does their work again" in response.content.decode()

    # Then the email is sent, exactly once (before: "Re-enqueued 1 job(s)", the job
    # "succeeded", the row stayed failed and nothing was sent)
    wait_until(lambda: EmailLog.objects.get(pk=log.pk).status == EmailStatus.SENT,
               timeout=30)
    time.sleep(1)
    assert smtp.handler.message_ids() == [email_message_id(log)]
    failed.refresh_from_db()
    assert failed.status == FailedJobStatus.RETRIED

    # And retrying it again changes nothing: its work is done
    failed.status = FailedJobStatus.FAILED
    failed.save(update_fields=["status"])
    response = staff_client.post(reverse("admin:jobs_failedjob_changelist"), {
        "action": "retry_selected", "_selected_action": [failed.pk]}, follow=True)
    assert "its work is already done" in response.content.decode()
    time.sleep(1)
    assert len(smtp.handler.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_pauses_the_workers_and_spends_no_retry(smtp, broker, manage_py):
    # Given workers whose database goes through a proxy, sending through a slow mail server
    proxy = TcpProxy(int(settings.DATABASES["default"]["PORT"] or 5432))
    url = child_database_url().replace(f":{settings.DATABASES['default']['PORT'] or 5432}/",
                                      f":{proxy.port}/")
    smtp.handler.on_data = lambda _: time.sleep(0.05)
    count = 60
    users = [make_user(f"user{i}@example.test") for i in range(2)]
    for i in range(count):
        send_email(kind="order_status", user_id=users[i % 2].pk, context=ORDER_CONTEXT)
    worker = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "4",
                       env=child_env(DATABASE_URL=url, **smtp.env()), name="worker")
    wait_until(lambda: len(smtp.handler.messages) >= 5, timeout=30)

    # When the database is unreachable for 20 s mid-stream
    proxy.cut()
    time.sleep(20)
    sent_during = len(smtp.handler.messages)
    proxy.restore()
    restored_at = time.time()

    # Then every email is sent once, soon after (before: 1,384 jobs pushed into retries
    # by a 20 s outage, the tail cleared 367 s after), with no failed job, no retry spent
    wait_until(lambda: all_sent(count), timeout=60)
    assert time.time() - restored_at < 30
    assert len(smtp.handler.messages) == count
    assert len(set(smtp.handler.message_ids())) == count
    assert sent_during < count
    assert not FailedJob.objects.exists()
    assert max(EmailLog.objects.values_list("attempts", flat=True)) <= 2
    assert "Database unreachable: workers pause" in worker.output()
    proxy.close()


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_resends_soon_and_identifiably(smtp, broker, manage_py):
    # Given a worker that dies right after the mail server accepted an email (before it
    # could record it sent), and a second worker
    env = child_env(**smtp.env(), BROKER_MAINTENANCE_SECONDS="5",
                    BROKER_HEARTBEAT_TIMEOUT_SECONDS="15")
    doomed = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "1",
                       env=env, name="doomed")
    worker_ready(doomed)
    killed: list[float] = []

    def kill_the_sender(_content: bytes) -> None:
        if not killed:
            doomed.signal(signal.SIGKILL)
            killed.append(time.time())

    smtp.handler.on_data = kill_the_sender
    user = make_user()
    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    wait_until(lambda: bool(killed), timeout=30)
    survivor = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "1",
                         env=env, name="survivor")
    worker_ready(survivor)

    # Then the email is sent again within seconds (before: after a 3-minute stale-claim
    # window), with the same Message-ID, so the receiver can drop the repeat
    wait_until(lambda: EmailLog.objects.get(pk=log.pk).status == EmailStatus.SENT,
               timeout=45)
    assert len(smtp.handler.messages) == 2
    assert smtp.handler.message_ids() == [email_message_id(log)] * 2
    log.refresh_from_db()
    assert log.attempts == 2
    assert (log.sent_at.timestamp() - killed[0]) <= 30




@pytest.mark.django_db(transaction=True)
def test_the_database_lost_mid_send_does_not_send_the_email_twice(smtp, broker, manage_py):
    # Given a worker whose database goes away right after the mail server accepted an
    # email, before the row could say "sent" (before: resent after the stale window)
    proxy = TcpProxy(int(settings.DATABASES["default"]["PORT"] or 5432))
    url = child_database_url().replace(f":{settings.DATABASES['default']['PORT'] or 5432}/",
                                       f":{proxy.port}/")
    cut: list[float] = []

    def lose_the_database(_content: bytes) -> None:
        if not cut:
            proxy.cut()
            cut.append(time.time())

    smtp.handler.on_data = lose_the_database
    user = make_user()
    log = send_email(kind="order_status", user_id=user.pk, context=ORDER_CONTEXT)
    worker = manage_py("runworkergroup", "high", "--processes", "1", "--threads", "1",
                       env=child_env(DATABASE_URL=url, **smtp.env()), name="worker")
    wait_until(lambda: bool(cut), timeout=30)

    # When the database is back a few seconds later
    time.sleep(3)
    proxy.restore()

    # Then the next attempt finds the note the first one left in Redis and records the
    # email sent: the mail server got it once
    wait_until(lambda: EmailLog.objects.get(pk=log.pk).status == EmailStatus.SENT,
               timeout=60)
    time.sleep(1)
    assert smtp.handler.message_ids() == [email_message_id(log)]
    log.refresh_from_db()
    assert log.attempts == 2
    assert "email already sent: recorded, not sent again" in worker.output()
    proxy.close()
