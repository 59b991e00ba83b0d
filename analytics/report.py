"""The monthly statistics report: the month's figures and a chart of its days, stored as a
:class:`analytics.models.MonthlyReport` and emailed to staff with the chart attached (PNG).

Stored and emailed once per run by the platform's mechanism
(:func:`jobs.operations.reports.run_report_for_run` / :func:`run_report_email`): a retry
after a failed email sends the stored report, and the email is claimed before it goes out,
so a second delivery of the run sends nothing.

The month is a calendar month of the business time zone. Its people counts are counted
over the whole month (a person active on ten days is one active user) and suppressed by
the daily rule (``analytics.services``); the other figures are the month's totals. Days of
the month without stored statistics are computed first, so the chart has every day.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from analytics.models import DailyStatistics, Measure, MonthlyReport
from analytics.selectors import period_figures
from analytics.services import (
    DayNotOver,
    daily_statistics_compute,
    day_window,
    local_zone,
    min_group_size,
    schedule_now,
    suppressed_groups,
)
from jobs.operations.performance_report import performance_rows
from jobs.operations.reports import run_report_email, run_report_for_run

logger = logging.getLogger("analytics")


def month_first_day(value: date) -> date:
    return value.replace(day=1)


def next_month(month: date) -> date:
    return (month.replace(day=28) + timedelta(days=4)).replace(day=1)


def previous_month(now: datetime) -> date:
    """The first day of the business-time-zone month before the one ``now`` falls in."""
    local = now.astimezone(local_zone()).date()
    return month_first_day(month_first_day(local) - timedelta(days=1))


def month_window(month: date) -> tuple[datetime, datetime]:
    return day_window(month)[0], day_window(next_month(month))[0]


def _month_days(month: date) -> list[date]:
    return [month + timedelta(days=n) for n in range((next_month(month) - month).days)]


def month_figures(month: date) -> dict[str, Any]:
    """The report's stored figures (counts and sums; module docstring), the days' rows
    for the chart under ``daily``."""
    days = _month_days(month)
    stored = set(DailyStatistics.objects.filter(day__in=days).values_list("day", flat=True))
    for day in days:
        if day not in stored:
            daily_statistics_compute(day=day)
    start, end = month_window(month)
    figures = period_figures(start=start, end=end)
    threshold = min_group_size()
    ended = figures.orders_completed + figures.orders_cancelled
    daily = DailyStatistics.objects.filter(day__in=days).order_by("day").values(
        "day", "orders_created", "orders_completed", "orders_cancelled",
        "gross_revenue_cents", "refunds_cents")
    return {
        "time_zone": settings.BUSINESS_TIME_ZONE, "days": len(days),
        "hours": round((end - start) / timedelta(hours=1)), "min_group_size": threshold,
        "users": {str(Measure.NEW): suppressed_groups(figures.new_users, min_size=threshold),
                  str(Measure.ACTIVE): suppressed_groups(figures.active_users,
                                                         min_size=threshold)},
        "orders": {"created": figures.orders_created, "completed": figures.orders_completed,
                   "cancelled": figures.orders_cancelled,
                   "completion_rate": round(figures.orders_completed / ended, 4)
                   if ended else None},
        "money": {"gross_revenue_cents": figures.gross_revenue_cents,
                  "tax_collected_cents": figures.tax_collected_cents,
                  "refunds_cents": figures.refunds_cents},
        "notifications": {"email": figures.emails_sent, "push": figures.push_sent,
                          "in_app": figures.in_app_sent},
        "queues": performance_rows(figures.queues),
        "daily": [{**row, "day": row["day"].isoformat()} for row in daily],
    }


def dollars(cents: int) -> str:
    return f"${cents / 100:,.2f}"


def _people_line(rows: list[dict], dimension: str) -> str:
    shown = [f"{r['group']} {'suppressed' if r['suppressed'] else r['users']}"
             for r in rows if r["dimension"] == dimension]
    return ", ".join(shown) or "none"


def report_summary(figures: dict[str, Any]) -> str:
    orders = figures["orders"]
    return (f"{orders['created']} orders, {orders['completed']} completed, "
            f"{dollars(figures['money']['gross_revenue_cents'])} gross revenue")


def report_text(report: MonthlyReport) -> str:
    """The plain-text email (and what admin shows beside the chart)."""
    f = report.figures
    orders, money, sent = f["orders"], f["money"], f["notifications"]
    rate = orders["completion_rate"]
    lines = [
        f"Statistics of {report.month:%B %Y} ({f['time_zone']}, {f['days']} days, "
        f"{f['hours']} hours)", "",
        "Users (groups under {} people are suppressed)".format(f["min_group_size"]),
    ]
    for measure, label in ((Measure.NEW, "new"), (Measure.ACTIVE, "active")):
        rows = f["users"][str(measure)]
        lines.append(f"  {label:<7} by role: {_people_line(rows, 'role')}")
        lines.append(f"  {'':<7} by province: {_people_line(rows, 'province')}")
    lines += [
        "", f"Orders: {orders['created']} created, {orders['completed']} completed, "
            f"{orders['cancelled']} cancelled; completion rate "
            f"{'-' if rate is None else f'{rate * 100:.1f} %'}",
        f"Money: gross revenue {dollars(money['gross_revenue_cents'])}, tax collected "
        f"{dollars(money['tax_collected_cents'])}, refunds {dollars(money['refunds_cents'])}",
        f"Notifications sent: {sent['email']} email, {sent['push']} push, "
        f"{sent['in_app']} in-app", "", "Jobs by queue:",
    ]
    for q in f["queues"]:
        lines.append(f"  {q['queue']:<12} {q['jobs_run']:>8} run, {q['failed']} failed "
                     f"({q['failure_rate'] * 100:.2f} %), p95 wait {q['p95_wait_ms']} ms, "
                     f"p95 run {q['p95_run_ms']} ms")
    if not f["queues"]:
        lines.append("  no jobs recorded")
    lines += ["", f"The chart of the month is attached. Stored as monthly report #{report.pk}."]
    return "\n".join(lines)


def monthly_report_send(*, month: date | None = None) -> MonthlyReport:
    """Build the report of ``month`` (default: the month before the job's tick), store it
    once per run and email it to staff with its chart.

    Raises:
      DayNotOver: ``month`` has not ended yet.
    """
    month = month_first_day(month) if month else previous_month(schedule_now())
    if month_window(month)[1] > timezone.now():
        raise DayNotOver(f"{month:%Y-%m} is not over yet in {settings.BUSINESS_TIME_ZONE}")

    def build() -> dict[str, Any]:
        # matplotlib takes a while to import: only the process that draws a chart pays it.
        from analytics.charts import ChartDay, month_chart_png

        figures = month_figures(month)
        start, end = month_window(month)
        chart = month_chart_png(
            title=f"{month:%B %Y} ({figures['time_zone']})",
            days=[ChartDay(day=date.fromisoformat(d["day"]), **{k: v for k, v in d.items()
                                                                 if k != "day"})
                  for d in figures["daily"]])
        return {"period_start": start, "period_end": end, "figures": figures,
                "summary": report_summary(figures), "chart_png": chart}

    report = run_report_for_run(MonthlyReport, build=build, month=month)
    report = run_report_email(
        report, subject=f"Monthly statistics {month:%Y-%m}: {report.summary}",
        body=report_text(report),
        attachments=[(f"statistics-{month:%Y-%m}.png", bytes(report.chart_png), "image/png")])
    logger.info("monthly statistics report", extra={"report_id": report.pk,
                                                    "month": f"{month:%Y-%m}",
                                                    "emailed_to": report.emailed_to})
    return report
