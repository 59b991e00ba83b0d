"""The monthly statistics report through a real worker: one stored report, one email to staff
with the chart attached as a PNG, and no second email for a retry or a second delivery."""

import email
import email.policy
import io
import time
from datetime import date

import pytest
from PIL import Image

from analytics.models import DailyStatistics, MonthlyReport
from marketplace.models import OrderStatus
from tests.analytics.conftest import order, payment_posted, person, utc
from tests.conftest import drain, wait_until

TICK = "2026-11-01T13:00:00+00:00"  # 08:00 EST on 2026-11-01: the report of October


def attachments(raw: bytes) -> dict[str, tuple[str, bytes]]:
    message = email.message_from_bytes(raw)
    return {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
            for part in message.walk() if part.get_filename()}


@pytest.mark.django_db(transaction=True)
def test_the_monthly_report_is_stored_once_and_emailed_once_with_its_png_chart(
        smtp_server, broker, worker, settings, monkeypatch):
    from analytics.tasks import analytics_monthly_report
    from jobs.models import Schedule
    from jobs.scheduling.scheduler import fire_schedule

    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    monkeypatch.setitem(analytics_monthly_report.options, "min_backoff", 1500)
    monkeypatch.setitem(analytics_monthly_report.options, "max_backoff", 1500)
    client = person(joined=utc(2026, 10, 2, 15))
    order(client=client, created=utc(2026, 10, 5, 15))
    order(client=client, created=utc(2026, 10, 6, 15), status=OrderStatus.COMPLETED,
          completed=utc(2026, 10, 20, 15))
    payment_posted(at=utc(2026, 10, 20, 16), revenue=25_000, tax=3_250, client=client)
    payment_posted(at=utc(2026, 11, 1, 4), revenue=99_999, tax=0, client=client)  # November
    schedule = Schedule.objects.create(name="analytics-report",
                                       actor_name="analytics_monthly_report",
                                       cron="0 8 1 * *", time_zone="America/Toronto")

    # Given the mail server down when the run fires
    smtp_server.stop()
    fire_schedule(schedule.pk, TICK)
    wait_until(MonthlyReport.objects.exists, timeout=60)
    time.sleep(1)  # the first attempt's email fails
    assert not smtp_server.handler.messages

    # When the mail server is back and the retry runs
    smtp_server.start()
    drain(broker, worker, timeout_ms=60_000)

    # Then one report of October, emailed once, with the chart attached
    report = MonthlyReport.objects.get()
    assert (report.month, report.run_key) == (date(2026, 10, 1), f"schedule:{schedule.pk}:{TICK}")
    assert (report.emailed_to, report.emailed_at is not None) == (1, True)
    assert report.period_start == utc(2026, 10, 1, 4) and report.period_end == utc(2026, 11, 1, 4)
    figures = report.figures
    assert (figures["days"], figures["hours"]) == (31, 744)
    assert figures["orders"] == {"created": 2, "completed": 1, "cancelled": 0,
                                 "completion_rate": 1.0}
    assert figures["money"] == {"gross_revenue_cents": 25_000, "tax_collected_cents": 3_250,
                                "refunds_cents": 0}
    assert [d["day"] for d in figures["daily"]][:2] == ["2026-10-01", "2026-10-02"]
    assert DailyStatistics.objects.filter(day__month=10).count() == 31  # computed first
    assert report.summary == "2 orders, 1 completed, $250.00 gross revenue"
    (raw,) = smtp_server.handler.messages
    assert [" ".join(s.split()) for s in smtp_server.handler.subjects()] == [
        "[Jobsite] Monthly statistics 2026-10: 2 orders, 1 completed, $250.00 gross revenue"]
    files = attachments(raw)
    content_type, png = files["statistics-2026-10.png"]
    assert content_type == "image/png"
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png == bytes(report.chart_png)
    image = Image.open(io.BytesIO(png))
    image.verify()  # a complete, valid PNG (checksums included)
    assert (image.format, image.size) == ("PNG", (1000, 600))
    body = email.message_from_bytes(raw, policy=email.policy.default).get_body(
        ("plain",)).get_content()
    assert "Orders: 2 created, 1 completed, 0 cancelled; completion rate 100.0 %" in body

    # And a second delivery of the same run stores and sends nothing more
    analytics_monthly_report.send_with_options(schedule_id=schedule.pk, scheduled_for=TICK)
    drain(broker, worker, timeout_ms=60_000)
    assert MonthlyReport.objects.count() == 1
    assert len(smtp_server.handler.messages) == 1
