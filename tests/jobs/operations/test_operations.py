"""Operations jobs run as schedules do: fired, enqueued, run by a real worker."""

import os
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from jobs.models import FailedJob, OperationsReport, ReportKind, Schedule, ScheduleOutcome
from jobs.operations.log_cleanup import log_cleanup
from jobs.queues import PermanentError, Queue, jobsite_actor
from jobs.scheduling.scheduler import fire_schedule
from tests.conftest import drain


def make_executions(ages_days: list[int]) -> None:
    job = DjangoJob.objects.create(id="schedule:999", next_run_time=None, job_state=b"")
    for n, age in enumerate(ages_days):
        DjangoJobExecution.objects.create(
            job=job, status=DjangoJobExecution.SUCCESS,
            run_time=timezone.now() - timedelta(days=age, minutes=n))


@pytest.mark.django_db
def test_log_cleanup_prunes_executions_failed_jobs_and_log_files(settings, tmp_path):
    settings.SCHEDULE_EXECUTION_RETENTION_DAYS = 30
    settings.FAILED_JOB_RETENTION_DAYS = 30
    for n, age in enumerate([2, 45]):
        failed_at = timezone.now() - timedelta(days=age)
        FailedJob.objects.create(message_id=f"m{n}", actor_name="log_cleanup",
                                 queue_name="maintenance", exception_type="RuntimeError",
                                 first_failed_at=failed_at, last_failed_at=failed_at)
    settings.LOG_DIR = str(tmp_path)
    settings.LOG_RETENTION_DAYS = 14
    make_executions([1, 29, 31, 400])
    old_log = tmp_path / "jobsite.log.3"
    old_log.write_text("old")
    stamp = time.time() - 15 * 86400
    os.utime(old_log, (stamp, stamp))
    nested = tmp_path / "archive"
    nested.mkdir()
    (nested / "jobsite.log.1").write_text("recent")
    (tmp_path / "jobsite.log").write_text("current")

    counts = log_cleanup()

    assert counts["executions"] == 2
    assert DjangoJobExecution.objects.count() == 2
    assert counts["log_files"] == 1
    assert sorted(p.name for p in tmp_path.rglob("*.log*")) == ["jobsite.log", "jobsite.log.1"]
    assert counts["failed_jobs"] == 1
    assert list(FailedJob.objects.values_list("message_id", flat=True)) == ["m0"]


@pytest.mark.django_db
def test_log_cleanup_without_log_dir_leaves_files_alone(settings):
    settings.LOG_DIR = ""

    assert log_cleanup()["log_files"] is None


@pytest.mark.django_db(transaction=True)
def test_fired_security_audit_schedule_runs_on_a_worker(broker, worker, settings):
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    schedule = Schedule.objects.create(name="security-audit", actor_name="security_audit",
                                       cron="0 6 * * 0", time_zone="America/Toronto")

    message_id = fire_schedule(schedule.pk)
    drain(broker, worker)

    schedule.refresh_from_db()
    assert (schedule.last_message_id, schedule.last_outcome) == (
        message_id, ScheduleOutcome.SUCCEEDED)
    assert OperationsReport.objects.filter(kind=ReportKind.SECURITY_AUDIT).count() == 1
    assert len(mail.outbox) == 1


@pytest.mark.django_db(transaction=True)
def test_fire_of_a_disabled_or_deleted_schedule_enqueues_nothing(broker):
    schedule = Schedule.objects.create(name="off", actor_name="security_audit",
                                       cron="0 6 * * 0", enabled=False)

    assert fire_schedule(schedule.pk) is None
    assert fire_schedule(schedule.pk + 1000) is None
    assert broker.client.hlen(f"{broker.namespace}:maintenance.msgs") == 0


@pytest.mark.django_db(transaction=True)
def test_fire_of_a_schedule_whose_actor_is_gone_records_the_error(broker):
    schedule = Schedule.objects.create(name="orphan", actor_name="removed_actor",
                                       cron="0 6 * * 0")

    with pytest.raises(Exception, match="removed_actor"):
        fire_schedule(schedule.pk)

    schedule.refresh_from_db()
    assert schedule.last_outcome == ScheduleOutcome.ERROR
    assert schedule.last_error == "actor 'removed_actor' is not registered"


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="test_sched_always_fails", max_retries=0)
def always_fails() -> None:
    raise PermanentError("broken on purpose")


@pytest.mark.django_db(transaction=True)
def test_failing_scheduled_run_emails_staff_once_per_streak(broker, worker, settings):
    # The failed-job list alerts on failed messages carrying ``schedule_id``.
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    schedule = Schedule.objects.create(name="fails", actor_name="test_sched_always_fails",
                                       cron="0 6 * * *")

    for _ in range(3):
        fire_schedule(schedule.pk)
        drain(broker, worker)

    assert FailedJob.objects.filter(actor_name="test_sched_always_fails").exists()
    alerts = [m for m in mail.outbox if "test_sched_always_fails" in m.subject + m.body]
    assert len(alerts) == 1
    schedule.refresh_from_db()
    assert schedule.last_outcome == ScheduleOutcome.FAILED
