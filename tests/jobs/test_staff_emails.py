"""Staff emails that must go out once (jobs.alerts.email_staff_once / email_staff_for_run):
duplicate deliveries and retries send one email; a failed send is sent by the next
attempt; a claim a dead worker left is taken over."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from jobs.alerts import CLAIM_TIMEOUT, email_staff_for_run, email_staff_once
from jobs.models import StaffEmail
from jobs.operations.log_cleanup import log_cleanup
from jobs.queues import Queue, jobsite_actor
from tests.conftest import drain

ATTEMPTS: list[int] = []


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="test_staff_report_then_fail",
               min_backoff=10, max_backoff=20)
def report_then_fail() -> None:
    """A monthly report whose run fails after its email went out."""
    email_staff_for_run(purpose="test-report", subject="Monthly report", body="Rows: 12")
    ATTEMPTS.append(1)
    if len(ATTEMPTS) == 1:
        raise RuntimeError("failed after the email")


@pytest.fixture(autouse=True)
def _staff(settings):
    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]
    ATTEMPTS.clear()


@pytest.mark.django_db
def test_one_key_is_emailed_once():
    assert email_staff_once(key="dispute:1:opened", subject="Dispute", body="#1") == 1
    assert email_staff_once(key="dispute:1:opened", subject="Dispute", body="#1") is None
    assert email_staff_once(key="dispute:1:closed", subject="Dispute", body="#1") == 1

    assert [m.subject for m in mail.outbox] == ["[Jobsite] Dispute"] * 2
    row = StaffEmail.objects.get(key="dispute:1:opened")
    assert (row.recipients, row.sent_at is not None) == (1, True)


@pytest.mark.django_db
def test_a_failed_send_is_sent_by_the_next_attempt(smtp_server):
    smtp_server.stop()
    with pytest.raises(OSError):
        email_staff_once(key="report:7", subject="Report", body="ok")
    assert not StaffEmail.objects.exists()  # the claim went with the failure

    smtp_server.start()
    assert email_staff_once(key="report:7", subject="Report", body="ok") == 1
    assert email_staff_once(key="report:7", subject="Report", body="ok") is None
    assert len(smtp_server.handler.messages) == 1


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_is_taken_over_after_the_timeout():
    StaffEmail.objects.create(key="report:8", subject="Report",
                              claimed_at=timezone.now() - timedelta(minutes=1))
    assert email_staff_once(key="report:8", subject="Report", body="ok") is None

    StaffEmail.objects.filter(key="report:8").update(
        claimed_at=timezone.now() - CLAIM_TIMEOUT - timedelta(seconds=1))
    assert email_staff_once(key="report:8", subject="Report", body="ok") == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_retried_after_its_email_does_not_email_again(broker, worker):
    # given a job whose first attempt emails staff and then fails
    report_then_fail.send()

    # when the worker runs it and its retry
    drain(broker, worker)

    # then both attempts ran and staff got one email
    assert len(ATTEMPTS) == 2
    assert [m.subject for m in mail.outbox] == ["[Jobsite] Monthly report"]
    assert StaffEmail.objects.get().key.startswith("test-report:message:")


@pytest.mark.django_db
def test_log_cleanup_forgets_claims_once_their_runs_cannot_be_retried(settings):
    settings.FAILED_JOB_RETENTION_DAYS = 30
    old = timezone.now() - timedelta(days=31)
    StaffEmail.objects.create(key="old", subject="s", claimed_at=old, sent_at=old)
    StaffEmail.objects.create(key="recent", subject="s", sent_at=timezone.now())
    StaffEmail.objects.create(key="unsent", subject="s", claimed_at=old)

    assert log_cleanup()["staff_emails"] == 1
    assert sorted(StaffEmail.objects.values_list("key", flat=True)) == ["recent", "unsent"]
