"""Daily statistics: computing a local day's figures and storing them, suppressed.

**Days.** A day is a calendar day of ``BUSINESS_TIME_ZONE`` (America/Toronto): local
midnight to the next local midnight, so 23 hours on the day daylight saving time starts
(2026-03-08) and 25 on the day it ends (2026-11-01). Its row stores the hours and the UTC
instants it spans. The schedule computes the day before its tick; any past day can be
recomputed (``manage.py analytics_daily``), and a day not yet over is refused.

**Recomputing** a day replaces its rows in one short transaction (the figures are read
before it), under a lock on the day so two runs never interleave: a rerun on the same data
writes identical rows, never a second set.

**Suppression.** The figures that count people — new and active users, by role and by
province — are the groups: each names how many people share a trait, and a small one
could single someone out. A group of 1 to ``ANALYTICS_MIN_GROUP_SIZE`` − 1 people is
stored as NULL with ``suppressed`` set, never its count. Zero is stored (it singles no
one out). Because a day's role groups and province groups count the same people, one
hidden group in a breakdown could be recovered as the other breakdown's total minus the
groups shown; so when exactly one group of a breakdown is hidden, the smallest other
non-zero group is hidden with it. Orders, money, notifications and jobs are totals of the
platform, broken down by no trait of a person, and are stored as they are.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from analytics.models import (
    DailyQueueStatistics,
    DailyStatistics,
    DailyUserCount,
    Dimension,
    Measure,
)
from analytics.selectors import PeopleCounts, period_figures
from jobs.middleware.attempts import current_attempt
from payments.services.accounting_export import business_day_window, previous_business_day

logger = logging.getLogger("analytics")

ROLES = ("client", "contractor")
#: Key of the advisory lock that serialises recomputations of one day.
_LOCK_CLASS = 0x616E6C74  # "anlt"


class DayNotOver(ValueError):
    """The day asked for has not ended yet in the business time zone."""


def schedule_now() -> datetime:
    """The instant the running job stands for: its schedule's tick when a schedule fired
    it (a retry the next morning still computes the day the tick meant), else now."""
    attempt = current_attempt()
    if attempt is not None and attempt.scheduled_for:
        return datetime.fromisoformat(attempt.scheduled_for)
    return timezone.now()


def statistics_default_day() -> date:
    """The business day before the one the job stands for (:func:`schedule_now`)."""
    return previous_business_day(schedule_now())


def day_window(day: date) -> tuple[datetime, datetime]:
    """``day``'s UTC instants [start, end) in the business time zone."""
    return business_day_window(day)


# --- Suppression ------------------------------------------------------------------------


def suppress(counts: dict[str, int], *, min_size: int) -> dict[str, int | None]:
    """One breakdown of people (group → count) as stored: None for a hidden group (the
    module docstring's rule)."""
    hidden = {group for group, count in counts.items() if 0 < count < min_size}
    if len(hidden) == 1:
        shown = sorted((count, group) for group, count in counts.items()
                       if count and group not in hidden)
        if shown:
            hidden.add(shown[0][1])
    return {group: None if group in hidden else count for group, count in counts.items()}


def breakdowns(people: PeopleCounts) -> dict[str, dict[str, int]]:
    """(role, province) counts as one breakdown per dimension; both roles always present."""
    by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
    by_province: dict[str, int] = defaultdict(int)
    for (role, province), count in people.items():
        by_role[role] += count
        by_province[province] += count
    return {Dimension.ROLE: by_role, Dimension.PROVINCE: dict(by_province)}


def suppressed_groups(people: PeopleCounts, *, min_size: int) -> list[dict]:
    """The stored groups of one measure: ``dimension``, ``group``, ``users`` (None when
    hidden) and ``suppressed``, in a stable order."""
    rows = []
    for dimension, counts in breakdowns(people).items():
        for group, users in sorted(suppress(counts, min_size=min_size).items()):
            rows.append({"dimension": str(dimension), "group": group, "users": users,
                         "suppressed": users is None})
    return rows


def min_group_size() -> int:
    return settings.ANALYTICS_MIN_GROUP_SIZE


# --- Daily statistics -------------------------------------------------------------------


def daily_statistics_compute(*, day: date, now: datetime | None = None) -> DailyStatistics:
    """Compute ``day`` and replace its stored rows. Idempotent.

    Raises:
      DayNotOver: ``day`` has not ended yet.
    """
    start, end = day_window(day)
    if end > (now or timezone.now()):
        raise DayNotOver(f"{day:%Y-%m-%d} is not over yet in {settings.BUSINESS_TIME_ZONE}")
    threshold = min_group_size()
    figures = period_figures(start=start, end=end)
    row = DailyStatistics(
        day=day, time_zone=settings.BUSINESS_TIME_ZONE,
        hours=round((end - start) / timedelta(hours=1)), utc_start=start, utc_end=end,
        min_group_size=threshold,
        orders_created=figures.orders_created, orders_completed=figures.orders_completed,
        orders_cancelled=figures.orders_cancelled,
        gross_revenue_cents=figures.gross_revenue_cents,
        tax_collected_cents=figures.tax_collected_cents, refunds_cents=figures.refunds_cents,
        emails_sent=figures.emails_sent, push_sent=figures.push_sent,
        in_app_sent=figures.in_app_sent)
    user_rows = [
        DailyUserCount(statistics=row, measure=measure, **group)
        for measure, people in ((Measure.NEW, figures.new_users),
                                (Measure.ACTIVE, figures.active_users))
        for group in suppressed_groups(people, min_size=threshold)]
    queue_rows = [
        DailyQueueStatistics(
            statistics=row, queue_name=name, jobs_run=perf.jobs_run, succeeded=perf.succeeded,
            failed=perf.failed, retried=perf.retried, dead_lettered=perf.dead_lettered,
            p50_wait_ms=_ms(perf.p50_wait_ms), p95_wait_ms=_ms(perf.p95_wait_ms),
            p50_run_ms=_ms(perf.p50_run_ms), p95_run_ms=_ms(perf.p95_run_ms))
        for name, perf in sorted(figures.queues.items())]
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                           [_LOCK_CLASS, day.toordinal()])
        DailyStatistics.objects.filter(day=day).delete()
        row.save(force_insert=True)
        DailyUserCount.objects.bulk_create(user_rows)
        DailyQueueStatistics.objects.bulk_create(queue_rows)
    logger.info("daily statistics computed", extra={
        "day": day.isoformat(), "hours": row.hours, "queues": len(queue_rows),
        "suppressed_groups": sum(1 for r in user_rows if r.suppressed)})
    return row


def daily_statistics_compute_range(*, first: date, last: date) -> list[DailyStatistics]:
    """Compute every day from ``first`` to ``last`` included, one transaction each.

    Raises:
      ValueError: ``last`` is before ``first``.
      DayNotOver: ``last`` has not ended yet (nothing is computed then).
    """
    if last < first:
        raise ValueError(f"{last:%Y-%m-%d} is before {first:%Y-%m-%d}")
    now = timezone.now()
    if day_window(last)[1] > now:
        raise DayNotOver(f"{last:%Y-%m-%d} is not over yet in {settings.BUSINESS_TIME_ZONE}")
    return [daily_statistics_compute(day=first + timedelta(days=offset), now=now)
            for offset in range((last - first).days + 1)]


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def local_zone() -> ZoneInfo:
    return ZoneInfo(settings.BUSINESS_TIME_ZONE)
