"""Daily statistics of prepared Toronto days, against numbers computed by hand: the day
daylight saving time starts (2026-03-08, 23 hours: 05:00Z to 04:00Z the next day) and the
day it ends (2026-11-01, 25 hours: 04:00Z to 05:00Z the next day), with records just
inside and just outside each boundary."""

from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command

from analytics.models import DailyQueueStatistics, DailyStatistics, DailyUserCount
from analytics.services import DayNotOver, daily_statistics_compute
from audit.models import AuditLog
from marketplace.models import ChatMessage, OrderStatus, Review, UserSession
from notifications.models import EmailLog, Notification, PushLog
from tests.analytics.conftest import (
    job_hour,
    order,
    payment_posted,
    person,
    refund_posted,
    utc,
)

SPRING = date(2026, 3, 8)
FALL = date(2026, 11, 1)
SECOND = timedelta(seconds=1)


def groups(day: date, measure: str) -> dict[tuple[str, str], int | None]:
    return {(row.dimension, row.group): row.users
            for row in DailyUserCount.objects.filter(statistics_id=day, measure=measure)}


def prepare_spring_day():
    """Records around 2026-03-08 in Toronto: [2026-03-08T05:00Z, 2026-03-09T04:00Z)."""
    start, end = utc(2026, 3, 8, 5), utc(2026, 3, 9, 4)
    # New users: the first and the last second of the day count, one second either side not.
    person(role="client", province="ON", joined=start)
    person(role="contractor", province="QC", joined=end - SECOND)
    person(role="client", province="ON", joined=start - SECOND)
    person(role="client", province="BC", joined=end)
    person(role="client", province="ON", joined=start, is_staff=True)

    # Active users, one per source (all joined long ago).
    a = person(role="client", province="ON", last_activity_at=utc(2026, 3, 8, 6, 30))
    b = person(role="client", province="ON")
    UserSession.objects.create(user=b, session_key_hash="b" * 64, created_at=utc(2026, 3, 8, 7, 30),
                               last_activity_at=utc(2026, 3, 8, 7, 30), expires_at=end)
    c = person(role="contractor", province="QC")
    AuditLog.objects.create(action="email.consent_changed", resource_type="marketplace.user",
                            resource_id=str(c.pk), actor=c, created_at=end - SECOND)
    d = person(role="client", province="")
    order(client=d, created=start)  # also the day's one order created
    e = person(role="contractor", province="QC", last_activity_at=end)  # active only after
    ChatMessage.objects.create(sender=e, recipient=a, body="hello", created_at=start - SECOND)
    f = person(role="client", province="ON", last_login=utc(2026, 3, 8, 12))
    reviewed = order(client=f, created=utc(2026, 2, 1), status=OrderStatus.COMPLETED,
                     completed=utc(2026, 2, 2))
    Review.objects.create(order=reviewed, author=f, subject=c, rating=5, created_at=start)
    staff = person(role="client", is_staff=True)
    AuditLog.objects.create(action="retention.hold_placed", resource_type="marketplace.user",
                            actor=staff, created_at=start)

    # Orders: completed and cancelled at the day's last second count, at the next day's
    # first second not; one created a second before the day does not.
    order(client=e, created=start - SECOND)
    order(client=e, created=utc(2026, 3, 1), status=OrderStatus.COMPLETED,
          completed=end - SECOND)
    order(client=e, created=utc(2026, 3, 1), status=OrderStatus.COMPLETED, completed=end)
    order(client=e, created=utc(2026, 3, 1), status=OrderStatus.CANCELLED, updated=end - SECOND)
    order(client=e, created=utc(2026, 3, 1), status=OrderStatus.CANCELLED, updated=end)

    # Money: a payment at the first second, one before; a refund at the last second, one after.
    paid = payment_posted(at=start, revenue=10_000, tax=1_300, client=e)
    payment_posted(at=start - SECOND, revenue=5_000, tax=650, client=e)
    refund_posted(paid, at=end - SECOND, revenue=2_000, tax=260)
    refund_posted(paid, at=end, revenue=1_000, tax=130)

    # Notifications.
    EmailLog.objects.create(kind="welcome", user=a, status="sent", created_at=start,
                            sent_at=start + SECOND)
    EmailLog.objects.create(kind="welcome", user=a, status="sent", created_at=end - SECOND,
                            sent_at=end)  # sent the next day
    PushLog.objects.create(kind="order_status", user=a, status="sent",
                           created_at=start - timedelta(minutes=30), sent_at=start)
    PushLog.objects.create(kind="order_status", user=a, status="sent", created_at=end - SECOND,
                           sent_at=end - SECOND)
    PushLog.objects.create(kind="order_status", user=a, status="no_device", created_at=start)
    for at in (start, end - SECOND, end):
        Notification.objects.create(user=a, kind="order_status", title="Order", created_at=at)

    # Jobs: the day's first and last hours, and the hours either side.
    job_hour(hour=start, succeeded=10, run_bucket=1, wait_bucket=3)
    job_hour(hour=end - timedelta(hours=1), failed=1, run_bucket=1, wait_bucket=3)
    job_hour(hour=start - timedelta(hours=1), succeeded=100)
    job_hour(hour=end, succeeded=100)
    job_hour(hour=start, queue="maintenance", actor="log_cleanup", succeeded=2, run_bucket=9,
             wait_bucket=0)


@pytest.mark.django_db
def test_the_spring_forward_day_has_23_hours_and_hand_computed_figures(settings, redis_client):
    settings.ANALYTICS_MIN_GROUP_SIZE = 1  # every group shown: the exact counts are checked
    prepare_spring_day()

    row = daily_statistics_compute(day=SPRING)

    row = DailyStatistics.objects.get(day=SPRING)
    assert (row.hours, row.utc_start, row.utc_end) == (23, utc(2026, 3, 8, 5), utc(2026, 3, 9, 4))
    assert (row.time_zone, row.min_group_size) == ("America/Toronto", 1)
    assert groups(SPRING, "new") == {("role", "client"): 1, ("role", "contractor"): 1,
                                     ("province", "ON"): 1, ("province", "QC"): 1}
    # a (last_activity_at), b (session), d (order), f (review, last login); c (audit entry)
    assert groups(SPRING, "active") == {
        ("role", "client"): 4, ("role", "contractor"): 1,
        ("province", "ON"): 3, ("province", "QC"): 1, ("province", "unknown"): 1}
    assert (row.orders_created, row.orders_completed, row.orders_cancelled) == (1, 1, 1)
    assert row.completion_rate == 0.5
    assert (row.gross_revenue_cents, row.tax_collected_cents, row.refunds_cents) == (
        10_000, 1_300, 2_260)
    assert (row.emails_sent, row.push_sent, row.in_app_sent) == (1, 2, 2)
    queues = {q.queue_name: q for q in DailyQueueStatistics.objects.filter(statistics=row)}
    assert set(queues) == {"emails", "maintenance"}
    emails = queues["emails"]
    assert (emails.jobs_run, emails.succeeded, emails.failed) == (11, 10, 1)
    assert emails.failure_rate == pytest.approx(1 / 11)
    # All 11 runs in the 5-10 ms bucket, waits in 25-50 ms: interpolated at rank 5.5 / 10.45.
    assert (emails.p50_run_ms, emails.p95_run_ms) == (7.5, 9.8)
    assert (emails.p50_wait_ms, emails.p95_wait_ms) == (37.5, 48.8)
    maintenance = queues["maintenance"]
    assert (maintenance.jobs_run, maintenance.failed, maintenance.p50_run_ms) == (2, 0, 3750.0)


@pytest.mark.django_db
def test_the_fall_back_day_has_25_hours_and_counts_its_repeated_hour(settings, redis_client):
    settings.ANALYTICS_MIN_GROUP_SIZE = 1
    start, end = utc(2026, 11, 1, 4), utc(2026, 11, 2, 5)  # 00:00 EDT to 00:00 EST
    for joined in (start - SECOND, start, utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 6, 30),
                   end - SECOND, end):  # 01:30 EDT and 01:30 EST both belong to the day
        person(role="contractor", province="NS", joined=joined)
    client = person()
    for created in (start - SECOND, start, end - SECOND, end):
        order(client=client, created=created)
    for hour in (start - timedelta(hours=1), start, end - timedelta(hours=1), end):
        job_hour(hour=hour, queue="push", actor="push_send", succeeded=1)

    row = daily_statistics_compute(day=FALL)

    assert (row.hours, row.utc_start, row.utc_end) == (25, start, end)
    assert groups(FALL, "new") == {("role", "client"): 0, ("role", "contractor"): 4,
                                   ("province", "NS"): 4}
    assert row.orders_created == 2
    assert DailyQueueStatistics.objects.get(statistics=row, queue_name="push").jobs_run == 2
    # An ordinary day has 24 hours.
    assert daily_statistics_compute(day=date(2026, 11, 2)).hours == 24


def stored_rows(day: date) -> dict[str, list[dict]]:
    return {
        "day": list(DailyStatistics.objects.filter(day=day).values()),
        "users": list(DailyUserCount.objects.filter(statistics_id=day)
                      .order_by("measure", "dimension", "group").values(
                          "statistics_id", "measure", "dimension", "group", "users",
                          "suppressed")),
        "queues": [{k: v for k, v in q.items() if k != "id"} for q in
                   DailyQueueStatistics.objects.filter(statistics_id=day)
                   .order_by("queue_name").values()],
    }


@pytest.mark.django_db
def test_recomputing_a_day_replaces_its_rows_with_identical_ones(redis_client):
    prepare_spring_day()
    daily_statistics_compute(day=SPRING)
    first = stored_rows(SPRING)

    daily_statistics_compute(day=SPRING)

    assert stored_rows(SPRING) == first
    assert DailyStatistics.objects.count() == 1
    assert DailyUserCount.objects.count() == len(first["users"]) == 9
    assert DailyQueueStatistics.objects.count() == len(first["queues"]) == 2


@pytest.mark.django_db
def test_people_groups_under_the_threshold_are_stored_as_suppressed(settings, redis_client):
    settings.ANALYTICS_MIN_GROUP_SIZE = 5
    day_start = utc(2026, 5, 4, 4)  # 2026-05-04 00:00 EDT
    joined = [("client", "ON")] * 5 + [("contractor", "QC")] * 4 + [("contractor", "BC")]
    for role, province in joined:
        person(role=role, province=province, joined=day_start + timedelta(hours=1))

    daily_statistics_compute(day=date(2026, 5, 4))

    rows = {(r.dimension, r.group): (r.users, r.suppressed)
            for r in DailyUserCount.objects.filter(measure="new")}
    assert rows == {
        ("role", "client"): (5, False),  # the threshold is shown
        ("role", "contractor"): (5, False),
        ("province", "ON"): (5, False),
        ("province", "QC"): (None, True),  # threshold - 1: suppressed, not stored
        ("province", "BC"): (None, True),
    }
    # Nobody active: zero is shown, it singles no one out.
    assert {(r.group, r.users) for r in DailyUserCount.objects.filter(measure="active")} == {
        ("client", 0), ("contractor", 0)}


@pytest.mark.django_db
def test_one_hidden_group_hides_the_next_smallest_so_totals_cannot_reveal_it(settings,
                                                                            redis_client):
    settings.ANALYTICS_MIN_GROUP_SIZE = 5
    day_start = utc(2026, 5, 4, 4)
    for role in ["client"] * 6 + ["contractor"] * 4:
        person(role=role, province="ON", joined=day_start)

    daily_statistics_compute(day=date(2026, 5, 4))

    # The province breakdown gives the total (10): with the 6 clients shown, the 4
    # contractors would be 10 - 6. Both roles are hidden.
    assert groups(date(2026, 5, 4), "new") == {("role", "client"): None,
                                               ("role", "contractor"): None,
                                               ("province", "ON"): 10}


@pytest.mark.django_db
def test_a_day_or_a_month_not_over_is_refused(redis_client):
    from analytics.models import MonthlyReport
    from analytics.report import monthly_report_send

    with pytest.raises(DayNotOver):
        daily_statistics_compute(day=date.today() + timedelta(days=1))
    with pytest.raises(DayNotOver, match="is not over yet"):
        monthly_report_send(month=date.today() + timedelta(days=1))
    assert not DailyStatistics.objects.exists() and not MonthlyReport.objects.exists()


@pytest.mark.django_db
def test_the_command_recomputes_a_range_and_refuses_bad_input(redis_client, capsys):
    person(joined=utc(2026, 3, 8, 12))
    call_command("analytics_daily", "--date", "2026-03-07", "--to", "2026-03-09")
    assert list(DailyStatistics.objects.order_by("day").values_list("day", "hours")) == [
        (date(2026, 3, 7), 24), (date(2026, 3, 8), 23), (date(2026, 3, 9), 24)]
    assert "3 day(s) computed." in capsys.readouterr().out

    for args, message in [(["--date", "2026-13-01"], "is not a date"),
                          (["--date", "2026-03-09", "--to", "2026-03-08"], "is before"),
                          (["--date", (date.today() + timedelta(days=2)).isoformat()],
                           "is not over yet")]:
        with pytest.raises(CommandError, match=message):
            call_command("analytics_daily", *args)
    assert DailyStatistics.objects.count() == 3


def test_a_threshold_under_one_is_a_configuration_error(settings):
    from analytics.checks import check_min_group_size

    settings.ANALYTICS_MIN_GROUP_SIZE = 0
    assert [m.id for m in check_min_group_size()] == ["analytics.E001"]
    settings.ANALYTICS_MIN_GROUP_SIZE = 1
    assert check_min_group_size() == []
