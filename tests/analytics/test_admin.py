"""The statistics in admin: the daily list with its 90-day charts and a day's groups and
queues, the monthly reports with their chart, for staff with the view permission only."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from analytics.models import MonthlyReport
from analytics.report import monthly_report_send
from analytics.services import daily_statistics_compute, day_window, local_zone
from tests.analytics.conftest import order, person


@pytest.fixture
def analyst(client, django_user_model):
    """Staff allowed to view the statistics and nothing else."""
    user = django_user_model.objects.create_user("analyst@example.test", "pw-analyst-123",
                                                 is_staff=True)
    user.user_permissions.set(Permission.objects.filter(
        content_type__app_label="analytics", codename__startswith="view_"))
    client.force_login(user)
    return client


@pytest.mark.django_db
def test_staff_with_the_view_permission_see_the_charts_a_day_and_the_reports(analyst,
                                                                            redis_client,
                                                                            settings):
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    yesterday = timezone.now().astimezone(local_zone()).date() - timedelta(days=1)
    noon = day_window(yesterday)[0] + timedelta(hours=12)
    client = person()
    order(client=client, created=noon - timedelta(days=400), status="completed",
          completed=noon)
    order(client=client, created=noon - timedelta(days=400), status="cancelled", updated=noon)
    stats = daily_statistics_compute(day=yesterday)
    a_year_ago = (yesterday - timedelta(days=365)).replace(day=1)  # outside the charts
    report = monthly_report_send(month=a_year_ago)

    page = analyst.get(reverse("admin:analytics_dailystatistics_changelist"))
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('<svg viewBox="0 0 720 220" role="img"') == 2
    assert f"{yesterday}: 1 completed, 1 cancelled</title>" in html
    assert html.count(": not computed</title>") == 2 * 89  # the other days of the 90
    day = analyst.get(reverse("admin:analytics_dailystatistics_change", args=[stats.pk]))
    assert day.status_code == 200
    assert "Active users" in day.content.decode() and "50.0 %" in day.content.decode()

    reports = analyst.get(reverse("admin:analytics_monthlyreport_changelist"))
    assert reports.status_code == 200
    assert reports.content.decode().count('src="data:image/png;base64,') == 1
    shown = analyst.get(reverse("admin:analytics_monthlyreport_change", args=[report.pk]))
    assert shown.status_code == 200
    assert "Orders: 0 created" in shown.content.decode()
    # Read-only for them (and for everyone: written by the statistics jobs only).
    assert analyst.post(reverse("admin:analytics_monthlyreport_delete", args=[report.pk]),
                        {"post": "yes"}).status_code == 403
    assert MonthlyReport.objects.count() == 1


@pytest.mark.django_db
def test_staff_without_the_permission_and_non_staff_are_refused(client, django_user_model):
    staff = django_user_model.objects.create_user("ops@example.test", "pw-ops-12345",
                                                  is_staff=True)
    staff.user_permissions.set(Permission.objects.filter(codename="view_order"))
    member = django_user_model.objects.create_user("member@example.test", "pw-member-123")
    urls = [reverse("admin:analytics_dailystatistics_changelist"),
            reverse("admin:analytics_monthlyreport_changelist")]
    client.force_login(staff)
    assert [client.get(url).status_code for url in urls] == [403, 403]
    client.force_login(member)
    assert [client.get(url).status_code for url in urls] == [302, 302]
