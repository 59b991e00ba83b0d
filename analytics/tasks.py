"""Actors of the statistics app and its default schedules. Thin: one service call each."""

from datetime import date

from jobs.queues import HOUR, PermanentError, Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec

TIME_ZONE = "America/Toronto"


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="analytics_daily_statistics")
def analytics_daily_statistics(day: str | None = None) -> None:
    """Compute and store the statistics of business day ``day`` (ISO date; default: the
    day before the schedule's tick). Idempotent: the day's rows are replaced."""
    from analytics.services import DayNotOver, daily_statistics_compute, statistics_default_day

    try:
        target = date.fromisoformat(day) if day else statistics_default_day()
    except ValueError as exc:
        raise PermanentError(f"day must be YYYY-MM-DD: {day!r}") from exc
    try:
        daily_statistics_compute(day=target)
    except DayNotOver as exc:
        raise PermanentError(str(exc)) from exc


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="analytics_monthly_report", time_limit=HOUR)
def analytics_monthly_report(month: str | None = None) -> None:
    """Email staff the statistics report of ``month`` (``YYYY-MM``; default: the month
    before the schedule's tick), stored once per run."""
    from analytics.report import monthly_report_send
    from analytics.services import DayNotOver

    try:
        first = date.fromisoformat(f"{month}-01") if month else None
    except ValueError as exc:
        raise PermanentError(f"month must be YYYY-MM: {month!r}") from exc
    try:
        monthly_report_send(month=first)
    except DayNotOver as exc:
        raise PermanentError(str(exc)) from exc


SCHEDULES: list[ScheduleSpec] = [
    ScheduleSpec(name="daily-statistics", actor_name="analytics_daily_statistics",
                 cron="30 0 * * *", time_zone=TIME_ZONE,
                 description="Daily 00:30 Toronto: statistics of the previous Toronto day "
                             "(users, orders, money, jobs, notifications)."),
    ScheduleSpec(name="analytics-report", actor_name="analytics_monthly_report",
                 cron="0 8 1 * *", time_zone=TIME_ZONE,
                 description="1st of month 08:00 Toronto: the previous month's statistics "
                             "report with its chart, emailed to staff."),
]
