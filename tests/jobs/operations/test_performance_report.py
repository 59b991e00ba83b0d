"""Weekly performance report on prepared statistics (``jobs.stats``)."""

import time

import pytest
from django.core import mail

from jobs.models import ReportKind
from jobs.monitoring import stats
from jobs.operations.performance_report import performance_report_send


@pytest.mark.django_db
def test_report_has_per_queue_rates_percentiles_and_slowest_actors(settings, redis_client):
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    record = stats.recorder.record
    for _ in range(90):
        record("emails", "email_send", "succeeded", run_ms=8, wait_ms=40)
    for _ in range(9):
        record("emails", "email_send", "succeeded", run_ms=200, wait_ms=40)
    record("emails", "email_send", "failed", run_ms=200, wait_ms=40)
    for _ in range(4):
        record("maintenance", "log_cleanup", "succeeded", run_ms=20_000, wait_ms=2_000)
    stats.recorder.flush()

    report = performance_report_send(days=7)

    assert report.kind == ReportKind.PERFORMANCE_REPORT
    rows = {row["queue"]: row for row in report.findings}
    assert set(rows) == {"emails", "maintenance"}
    emails = rows["emails"]
    assert (emails["jobs_run"], emails["succeeded"], emails["failed"]) == (100, 99, 1)
    assert emails["failure_rate"] == 0.01
    assert 5 < emails["p50_run_ms"] <= 10  # in the 5-10 ms bucket
    assert 100 < emails["p95_run_ms"] <= 250  # in the 100-250 ms bucket
    assert 25 < emails["p50_wait_ms"] <= 50
    assert rows["maintenance"]["slowest_actors"][0]["actor"] == "log_cleanup"
    assert 10_000 < rows["maintenance"]["p95_run_ms"] <= 30_000
    assert report.summary == "104 jobs run, 1 failed, 2 queue(s)"
    (email,) = mail.outbox
    assert email.subject == "[Jobsite] Weekly job performance: 104 jobs run, 1 failed, 2 queue(s)"
    assert "emails" in email.body and "1.00%" in email.body
    assert "log_cleanup" in email.body


@pytest.mark.django_db(transaction=True)
def test_a_scheduled_report_whose_email_failed_is_stored_once_and_sent_by_the_retry(
        smtp_server, broker, worker, settings, monkeypatch):
    from jobs.models import OperationsReport, Schedule
    from jobs.scheduling.scheduler import fire_schedule
    from jobs.tasks import performance_report_task
    from tests.conftest import drain, wait_until

    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    monkeypatch.setitem(performance_report_task.options, "min_backoff", 1500)
    monkeypatch.setitem(performance_report_task.options, "max_backoff", 1500)
    schedule = Schedule.objects.create(name="performance-report",
                                       actor_name="performance_report", cron="0 5 * * 0",
                                       time_zone="America/Toronto", kwargs={"days": 7})
    # Given the mail server down when the Sunday run fires
    smtp_server.stop()
    fire_schedule(schedule.pk, "2026-11-29T10:00:00+00:00")
    wait_until(lambda: OperationsReport.objects.exists())
    time.sleep(0.5)  # the first attempt's email fails
    assert not smtp_server.handler.messages

    # When the mail server is back and the retry runs
    smtp_server.start()
    drain(broker, worker)

    # Then one report exists for the run (before: one per failed attempt, emailed_to=0)
    report = OperationsReport.objects.get()
    assert report.run_key == f"schedule:{schedule.pk}:2026-11-29T10:00:00+00:00"
    assert (report.emailed_to, report.emailed_at is not None) == (1, True)
    assert len(smtp_server.handler.messages) == 1

    # And a second delivery of the same run stores and sends nothing more
    fire_schedule(schedule.pk, "2026-11-29T10:00:00+00:00")  # the tick is claimed: no-op
    performance_report_task.send_with_options(
        kwargs={"days": 7}, schedule_id=schedule.pk, scheduled_for="2026-11-29T10:00:00+00:00")
    drain(broker, worker)
    assert OperationsReport.objects.count() == 1
    assert len(smtp_server.handler.messages) == 1
