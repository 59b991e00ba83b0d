"""Weekly performance report (seed 12.8.3): per queue jobs run, failure rate, p50/p95 run
and wait time, slowest actors — from the statistics the jobs app keeps
(``jobs.monitoring.stats.performance_summary``) — stored once per run and emailed to staff."""

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from jobs.models import OperationsReport, ReportKind
from jobs.monitoring.stats import performance_summary
from jobs.operations.reports import (
    ReportDraft,
    operations_report_email,
    operations_report_for_run,
)

logger = logging.getLogger(__name__)


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1000:.1f} s" if value >= 10_000 else f"{value:.0f} ms"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def performance_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``performance_summary``'s per-queue objects as JSON-ready dicts (stored findings)."""
    rows = []
    for queue_name, perf in sorted(summary.items()):
        rows.append({
            "queue": queue_name,
            "jobs_run": perf.jobs_run, "succeeded": perf.succeeded, "failed": perf.failed,
            "failure_rate": round(perf.failure_rate, 4),
            "p50_run_ms": _round(perf.p50_run_ms), "p95_run_ms": _round(perf.p95_run_ms),
            "p50_wait_ms": _round(perf.p50_wait_ms), "p95_wait_ms": _round(perf.p95_wait_ms),
            "slowest_actors": [
                {"actor": a.actor_name, "jobs_run": a.jobs_run, "failed": a.failed,
                 "p95_run_ms": _round(a.p95_run_ms)}
                for a in perf.slowest_actors
            ],
        })
    return rows


def performance_report_text(rows: list[dict[str, Any]], *, start: datetime, end: datetime
                            ) -> str:
    """The plain-text email: one table of queues, then each queue's slowest actors."""
    lines = [f"Job performance {start:%Y-%m-%d %H:%M} – {end:%Y-%m-%d %H:%M} UTC", ""]
    if not rows:
        return "\n".join(lines + ["No jobs ran in this period."])
    header = f"{'queue':<12} {'run':>8} {'failed':>7} {'fail %':>7} {'p50 run':>9} " \
             f"{'p95 run':>9} {'p50 wait':>9} {'p95 wait':>9}"
    lines += [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['queue']:<12} {r['jobs_run']:>8} {r['failed']:>7} "
            f"{r['failure_rate'] * 100:>6.2f}% {_ms(r['p50_run_ms']):>9} "
            f"{_ms(r['p95_run_ms']):>9} {_ms(r['p50_wait_ms']):>9} {_ms(r['p95_wait_ms']):>9}")
    lines += ["", "Slowest actors (p95 run time):"]
    for r in rows:
        for a in r["slowest_actors"]:
            lines.append(f"  {r['queue']:<12} {a['actor']:<40} p95 {_ms(a['p95_run_ms'])}, "
                         f"{a['jobs_run']} run, {a['failed']} failed")
    return "\n".join(lines)


def performance_report_send(*, days: int = 7, end: datetime | None = None) -> OperationsReport:
    """Build the report for the ``days`` before ``end`` (now), store it once per run, and
    email it to staff (a retry after a failed email sends the stored report)."""

    def build() -> ReportDraft:
        until = end or timezone.now()
        start = until - timedelta(days=days)
        rows = performance_rows(performance_summary(start=start, end=until))
        total = sum(r["jobs_run"] for r in rows)
        failed = sum(r["failed"] for r in rows)
        return ReportDraft(findings=rows, period_start=start, period_end=until,
                           summary=f"{total} jobs run, {failed} failed, {len(rows)} queue(s)")

    report = operations_report_for_run(kind=ReportKind.PERFORMANCE_REPORT, build=build)
    body = performance_report_text(report.findings, start=report.period_start,
                                   end=report.period_end)
    report = operations_report_email(report, subject=f"Weekly job performance: {report.summary}",
                                     body=body)
    logger.info("performance report", extra={"report_id": report.pk})
    return report
