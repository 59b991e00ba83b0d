"""The queue dashboard in Django admin (``/admin/jobs/dashboard/``).

Staff with ``jobs.view_queue_dashboard`` (superusers have every permission) see, per queue,
what waits, runs, is delayed or failed, the last hour's throughput and failure rate, the
oldest message's age, live workers, and a chart of jobs per minute over the last hour.
Everything is rendered on the server (the chart is inline SVG): nothing comes from a CDN.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from jobs.monitoring import broker_state, stats
from jobs.monitoring.health import monitoring_redis
from jobs.selectors import failed_jobs_open_counts_by_queue

logger = logging.getLogger(__name__)

PERMISSION = "jobs.view_queue_dashboard"
CHART_MINUTES = 60

# Chart geometry (SVG user units).
CHART_WIDTH, CHART_HEIGHT = 720, 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 44, 12, 12, 28


@dataclass
class QueueRow:
    name: str
    ready: int
    delayed: int
    in_flight: int
    running: int
    dead: int
    failed: int
    oldest_age_seconds: float | None
    finished_last_hour: int
    failed_last_hour: int

    @property
    def failure_rate(self) -> float | None:
        if not self.finished_last_hour:
            return None
        return self.failed_last_hour / self.finished_last_hour

    @property
    def failure_percent(self) -> float | None:
        rate = self.failure_rate
        return None if rate is None else rate * 100

    @property
    def per_minute(self) -> float:
        return self.finished_last_hour / CHART_MINUTES


@dataclass
class Bar:
    x: float
    width: float
    ok_y: float
    ok_height: float
    failed_y: float
    failed_height: float
    label: str


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^n at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    magnitude = 1
    while True:
        for step in (1, 2, 5):
            if step * magnitude >= value:
                return step * magnitude
        magnitude *= 10


def bar_chart(points: Sequence[tuple[str, str | None, int, int]]) -> dict:
    """SVG geometry for stacked bars, left to right: each point is (hover label, x-axis
    label or None, lower value, upper value) — succeeded and failed jobs here, completed and
    cancelled orders in the statistics admin. ``templates/admin/jobs/bar_chart.html``
    draws it."""
    top = _nice_ceiling(max((ok + bad for _, _, ok, bad in points), default=0))
    plot_w = CHART_WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(points), 1)
    base = PAD_TOP + plot_h
    bars, ticks = [], []
    for index, (label, tick, ok, bad) in enumerate(points):
        x = PAD_LEFT + index * slot
        ok_h = plot_h * ok / top
        bad_h = plot_h * bad / top
        bars.append(Bar(x=round(x + 1, 1), width=round(max(slot - 2, 1), 1),
                        ok_y=round(base - ok_h, 1), ok_height=round(ok_h, 1),
                        failed_y=round(base - ok_h - bad_h, 1), failed_height=round(bad_h, 1),
                        label=label))
        if tick is not None:
            ticks.append({"x": round(x + slot / 2, 1), "label": tick})
    y_ticks = [{"y": round(base - plot_h * f, 1), "label": f"{top * f:g}"}
               for f in (0, 0.5, 1)]
    return {"width": CHART_WIDTH, "height": CHART_HEIGHT, "bars": bars, "x_ticks": ticks,
            "y_ticks": y_ticks, "left": PAD_LEFT, "right": CHART_WIDTH - PAD_RIGHT,
            "base": base, "tick_text_y": base + 18, "label_x": PAD_LEFT - 6}


def build_chart(minutes: list[tuple[int, int, int]]) -> dict:
    """SVG geometry for (unix minute, succeeded, failed) bars, oldest first."""
    points = []
    for minute, ok, bad in minutes:
        when = datetime.fromtimestamp(minute * 60, tz=UTC)
        points.append((f"{when:%H:%M} UTC: {ok} succeeded, {bad} failed",
                       f"{when:%H:%M}" if minute % 10 == 0 else None, ok, bad))
    return bar_chart(points)


def dashboard_context(now: float | None = None) -> dict:
    """Everything the dashboard shows. Raises redis.RedisError when Redis is unreachable."""
    now = time.time() if now is None else now
    client = monitoring_redis()
    try:
        depths = broker_state.queue_depths(client, now=now)
        minutes = stats.recent_minutes(count=CHART_MINUTES, now=now, client=client)
        running = stats.in_progress(client)
        workers = broker_state.live_worker_count(client, now=now)
    finally:
        client.close()
    failed = failed_jobs_open_counts_by_queue()

    finished: dict[str, int] = {}
    failed_hour: dict[str, int] = {}
    series = []
    for minute, per_key in minutes:
        ok_total = bad_total = 0
        for (queue, _actor), counts in per_key.items():
            finished[queue] = finished.get(queue, 0) + counts.finished
            failed_hour[queue] = failed_hour.get(queue, 0) + counts.failed
            ok_total += counts.succeeded
            bad_total += counts.failed
        series.append((minute, ok_total, bad_total))
    running_by_queue: dict[str, int] = {}
    for (queue, _actor), count in running.items():
        running_by_queue[queue] = running_by_queue.get(queue, 0) + count

    names = sorted(set(depths) | set(finished))
    rows = []
    for name in names:
        depth = depths.get(name) or broker_state.QueueDepth(name, 0, 0, 0, 0, None)
        rows.append(QueueRow(
            name=name, ready=depth.ready, delayed=depth.delayed, in_flight=depth.in_flight,
            running=running_by_queue.get(name, 0), dead=depth.dead,
            failed=failed.get(name, 0),
            oldest_age_seconds=depth.oldest_age_seconds,
            finished_last_hour=finished.get(name, 0), failed_last_hour=failed_hour.get(name, 0),
        ))
    total_finished = sum(r.finished_last_hour for r in rows)
    total_failed = sum(r.failed_last_hour for r in rows)
    return {
        "rows": rows,
        "workers": workers,
        "total_finished": total_finished,
        "total_failed": total_failed,
        "total_failure_rate": total_failed / total_finished if total_finished else None,
        "total_failure_percent": 100 * total_failed / total_finished if total_finished else None,
        "chart": build_chart(series),
        "generated_at": datetime.fromtimestamp(now, tz=UTC),
    }


def queue_dashboard(request: HttpRequest) -> HttpResponse:
    """Admin view; ``config/urls.py`` wraps it in ``admin.site.admin_view`` (login, staff)."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied(f"The queue dashboard needs the {PERMISSION} permission.")
    context = {**admin.site.each_context(request), "title": "Queue dashboard"}
    try:
        context.update(dashboard_context())
    except redis.RedisError as exc:
        logger.warning("Queue dashboard: Redis unavailable (%s)", type(exc).__name__)
        context["redis_error"] = type(exc).__name__
    return TemplateResponse(request, "admin/jobs/dashboard.html", context)
