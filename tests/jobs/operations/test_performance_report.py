"""Weekly performance report on prepared statistics (``jobs.stats``)."""

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
