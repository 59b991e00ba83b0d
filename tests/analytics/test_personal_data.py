"""No personal data in statistics: after the daily statistics and the monthly report ran
through a real worker on records full of distinctive names, addresses and texts, none of
them is in any analytics table, the report (stored, emailed, attached) or the log output."""

import pytest
from django.apps import apps
from django.core import mail

from analytics.models import DailyStatistics, MonthlyReport
from audit.models import AuditLog
from marketplace.models import ChatMessage, ContractorProfile, OrderStatus, Review
from notifications.models import Notification
from tests.analytics.conftest import order, payment_posted, person, utc
from tests.conftest import drain

NAMES = ["Zebulonia", "Quixmorton", "Farquharsen", "Wimbleworth"]
EMAILS = ["zebulonia.quixmorton@pii-marker.test", "farquharsen@pii-marker.test"]
TEXTS = ["Marmalade-Ferret Renovations", "Astonishingly purple gazebo",
         "Klaxon-shaped review words", "Velvet chat whisper", "Pelican notice body"]
MARKERS = NAMES + EMAILS + TEXTS


def seed_october() -> None:
    at = utc(2026, 10, 15, 16)
    client = person(first_name="Zebulonia", last_name="Quixmorton", email=EMAILS[0],
                    joined=at, last_activity_at=at)
    contractor = person(role="contractor", first_name="Farquharsen", last_name="Wimbleworth",
                        email=EMAILS[1], joined=at, last_login=at)
    ContractorProfile.objects.create(user=contractor, business_name=TEXTS[0], city="Ottawa",
                                     province="ON")
    done = order(client=client, created=at, title=TEXTS[1], status=OrderStatus.COMPLETED,
                 completed=at)
    Review.objects.create(order=done, author=client, subject=contractor, rating=4,
                          text=TEXTS[2], created_at=at)
    ChatMessage.objects.create(sender=contractor, recipient=client, body=TEXTS[3],
                               created_at=at)
    Notification.objects.create(user=client, kind="order_status", title=TEXTS[4],
                                body=TEXTS[4], created_at=at)
    AuditLog.objects.create(action="review.created", resource_type="marketplace.review",
                            resource_id=str(done.pk), actor=client, created_at=at)
    payment_posted(at=at, revenue=12_345, tax=1_605, client=client)


def analytics_rows() -> str:
    """Every column of every row of every analytics table, as text (bytes as latin-1)."""
    text = []
    for model in apps.get_app_config("analytics").get_models():
        for row in model.objects.values_list():
            for value in row:
                text.append(bytes(value).decode("latin-1") if isinstance(value, bytes | memoryview)
                            else str(value))
    return "\n".join(text)


@pytest.mark.django_db(transaction=True)
def test_statistics_reports_and_logs_hold_no_personal_data(broker, worker, settings,
                                                           stderr_output):
    from analytics.tasks import analytics_daily_statistics, analytics_monthly_report

    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    settings.ANALYTICS_MIN_GROUP_SIZE = 1  # nothing suppressed: every figure is stored
    seed_october()

    analytics_daily_statistics.send(day="2026-10-15")
    analytics_monthly_report.send(month="2026-10")
    drain(broker, worker, timeout_ms=60_000)

    # The statistics and the report are there, and hold the seeded records' figures...
    day = DailyStatistics.objects.get(day="2026-10-15")
    assert (day.orders_created, day.orders_completed, day.gross_revenue_cents) == (
        1, 1, 12_345)
    assert day.user_counts.get(measure="active", dimension="role", group="client").users == 1
    report = MonthlyReport.objects.get()
    (sent,) = mail.outbox
    logs = stderr_output.getvalue()
    assert "daily statistics computed" in logs and "monthly statistics report" in logs
    # ...and none of their names, addresses or texts.
    scanned = {
        "analytics tables": analytics_rows(),
        "stored report": f"{report.summary}\n{report.figures}",
        "email": f"{sent.subject}\n{sent.body}",
        "attachment": "\n".join(content.decode("latin-1") if isinstance(content, bytes)
                                else str(content) for _, content, _ in sent.attachments),
        "logs": logs,
    }
    assert len(sent.attachments) == 1 and len(scanned["attachment"]) > 1000
    found = {(where, marker) for where, text in scanned.items() for marker in MARKERS
             if marker.lower() in text.lower()}
    assert found == set()
