"""Statistics in Django admin: read-only, for staff with the view permission of each model
(``analytics.view_dailystatistics``, ``analytics.view_monthlyreport``; superusers have
every permission). The daily list opens with charts of the last 90 days (inline SVG, as
the queue dashboard draws them); a monthly report shows its figures and its chart."""

import base64
import json
from datetime import timedelta

from django.contrib import admin
from django.utils import timezone
from django.utils.html import format_html

from analytics.models import DailyQueueStatistics, DailyStatistics, DailyUserCount, MonthlyReport
from analytics.report import dollars, report_text
from analytics.services import local_zone
from jobs.monitoring.dashboard import bar_chart

# Written by the statistics jobs only: staff look, nobody adds, edits or deletes.
from payments.admin import ReadOnlyAdmin, ReadOnlyInline

CHART_DAYS = 90


class UserCountInline(ReadOnlyInline):
    model = DailyUserCount
    fields = ("measure", "dimension", "group", "users", "suppressed")


class QueueInline(ReadOnlyInline):
    model = DailyQueueStatistics
    fields = ("queue_name", "jobs_run", "succeeded", "failed", "failure_percent", "retried",
              "dead_lettered", "p50_wait_ms", "p95_wait_ms", "p50_run_ms", "p95_run_ms")
    readonly_fields = ("failure_percent",)

    @admin.display(description="failure rate")
    def failure_percent(self, obj: DailyQueueStatistics) -> str:
        rate = obj.failure_rate
        return "-" if rate is None else f"{rate * 100:.2f} %"


def last_days_charts(*, days: int = CHART_DAYS) -> dict:
    """Bars for each of the ``days`` days before today (business time zone): orders
    completed and cancelled, and gross revenue in dollars; a day not computed is empty."""
    today = timezone.now().astimezone(local_zone()).date()
    first = today - timedelta(days=days)
    rows = {row.day: row for row in DailyStatistics.objects.filter(day__gte=first,
                                                                   day__lt=today)}
    orders, revenue = [], []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = rows.get(day)
        tick = f"{day:%m-%d}" if offset % 15 == 0 else None
        if row is None:
            orders.append((f"{day}: not computed", tick, 0, 0))
            revenue.append((f"{day}: not computed", tick, 0, 0))
            continue
        orders.append((f"{day}: {row.orders_completed} completed, {row.orders_cancelled} "
                       f"cancelled", tick, row.orders_completed, row.orders_cancelled))
        revenue.append((f"{day}: {dollars(row.gross_revenue_cents)} gross revenue", tick,
                        row.gross_revenue_cents // 100, 0))
    return {"orders_chart": bar_chart(orders), "revenue_chart": bar_chart(revenue),
            "chart_first": first, "chart_last": today - timedelta(days=1)}


@admin.register(DailyStatistics)
class DailyStatisticsAdmin(ReadOnlyAdmin):
    change_list_template = "admin/analytics/dailystatistics/change_list.html"
    list_display = ("day", "hours", "orders_created", "orders_completed", "orders_cancelled",
                    "completion", "gross_revenue", "tax_collected", "refunds", "emails_sent",
                    "push_sent", "in_app_sent")
    date_hierarchy = "day"
    inlines = [UserCountInline, QueueInline]
    fieldsets = [
        ("Day", {"fields": ("day", "time_zone", "hours", "utc_start", "utc_end",
                            "min_group_size")}),
        ("Orders", {"fields": ("orders_created", "orders_completed", "orders_cancelled",
                               "completion")}),
        ("Money (cents)", {"fields": ("gross_revenue_cents", "tax_collected_cents",
                                      "refunds_cents")}),
        ("Notifications sent", {"fields": ("emails_sent", "push_sent", "in_app_sent")}),
    ]
    readonly_fields = ("completion",)

    @admin.display(description="completion rate")
    def completion(self, obj: DailyStatistics) -> str:
        rate = obj.completion_rate
        return "-" if rate is None else f"{rate * 100:.1f} %"

    @admin.display(description="gross revenue", ordering="gross_revenue_cents")
    def gross_revenue(self, obj: DailyStatistics) -> str:
        return dollars(obj.gross_revenue_cents)

    @admin.display(description="tax collected", ordering="tax_collected_cents")
    def tax_collected(self, obj: DailyStatistics) -> str:
        return dollars(obj.tax_collected_cents)

    @admin.display(description="refunds", ordering="refunds_cents")
    def refunds(self, obj: DailyStatistics) -> str:
        return dollars(obj.refunds_cents)

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}),
                                                 **last_days_charts()})


def _chart_img(report: MonthlyReport, *, width: int) -> str:
    data = base64.b64encode(bytes(report.chart_png)).decode()
    return format_html('<img src="data:image/png;base64,{}" width="{}" alt="Chart of {}">',
                       data, width, f"{report.month:%Y-%m}")


@admin.register(MonthlyReport)
class MonthlyReportAdmin(ReadOnlyAdmin):
    list_display = ("month_label", "summary", "created_at", "emailed_at", "emailed_to",
                    "chart_thumbnail")
    fields = ("month_label", "period_start", "period_end", "created_at", "emailed_at",
              "emailed_to", "chart", "report", "figures_json")
    readonly_fields = fields

    @admin.display(description="month", ordering="month")
    def month_label(self, obj: MonthlyReport) -> str:
        return f"{obj.month:%Y-%m}"

    @admin.display(description="chart")
    def chart_thumbnail(self, obj: MonthlyReport) -> str:
        return _chart_img(obj, width=240)

    @admin.display(description="chart")
    def chart(self, obj: MonthlyReport) -> str:
        return _chart_img(obj, width=800)

    @admin.display(description="report (as emailed)")
    def report(self, obj: MonthlyReport) -> str:
        return format_html("<pre>{}</pre>", report_text(obj))

    @admin.display(description="figures")
    def figures_json(self, obj: MonthlyReport) -> str:
        return format_html("<pre>{}</pre>", json.dumps(obj.figures, indent=2))
