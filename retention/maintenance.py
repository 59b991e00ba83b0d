"""Database maintenance (weekly) and the monthly comprehensive cleanup.

:func:`database_maintenance` removes expired tokens (the refresh-token cleanup), then runs
``VACUUM (ANALYZE)`` on every table a cleanup deletes from, so the space of deleted rows
is reclaimed, the overwritten content of dead rows is gone from the heap and the planner's
statistics are fresh; table sizes and dead rows become data statistics.

:func:`comprehensive_cleanup_start` (the 1st of the month) starts every cleanup's
catch-up run and emails staff the month's retention report: what each policy would still
remove now, and what the runs of the last month did (counts only).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.apps import apps
from django.db import connection
from django.utils import timezone

from audit.services import audit_log_record
from jobs.alerts import email_staff_for_run
from retention.models import DataStatistic, RetentionRun
from retention.services import (
    CLEANUPS,
    Step,
    retention_report,
    retention_run_start,
    retention_run_step,
)

logger = logging.getLogger("retention")

#: Tables the cleanups write that are not a cleanup's own model.
EXTRA_TABLES = ("django_session", "retention_retentionrun", "retention_archivemanifest")


def maintained_tables() -> list[str]:
    tables = {apps.get_model(cleanup.model)._meta.db_table for cleanup in CLEANUPS.values()}
    for cleanup in CLEANUPS.values():
        tables |= {apps.get_model(model)._meta.db_table
                   for model, _ in cleanup.dependents + cleanup.nullify}
    return sorted(tables | set(EXTRA_TABLES))


def database_maintenance(*, now: datetime | None = None) -> RetentionRun:
    """Expired tokens out, then ``VACUUM (ANALYZE)`` table by table. Must run outside a
    transaction (VACUUM cannot run in one); each table is its own statement."""
    now = now or timezone.now()
    tokens = retention_run_start("refresh-token-cleanup", dry_run=False, now=now)
    while retention_run_step(tokens.pk, "refresh-token-cleanup") == Step.MORE:
        pass
    tokens.refresh_from_db()
    run = RetentionRun.objects.create(policy="database-maintenance",
                                      cleanup="database-maintenance", dry_run=False,
                                      started_at=now)
    counts = {"tokens_deleted": tokens.counts.get("deleted", 0), "tables": 0,
              "dead_rows_before": 0, "dead_rows_after": 0}
    with connection.cursor() as cursor:
        for table in maintained_tables():
            dead_before = _dead_rows(cursor, table)
            started = time.monotonic()
            cursor.execute(f'VACUUM (ANALYZE) "{table}"')
            cursor.execute("SELECT pg_total_relation_size(%s::regclass), "
                           "coalesce((SELECT n_live_tup FROM pg_stat_user_tables "
                           "WHERE relid = %s::regclass), 0)", [table, table])
            size, live = cursor.fetchone()
            counts["tables"] += 1
            counts["dead_rows_before"] += dead_before
            counts["dead_rows_after"] += _dead_rows(cursor, table)
            for name, value in ((f"db.{table}.bytes", size), (f"db.{table}.rows", live)):
                DataStatistic.objects.update_or_create(
                    name=name, defaults={"value": value, "measured_at": now})
            logger.info("vacuumed", extra={"table": table,
                                           "ms": round((time.monotonic() - started) * 1000)})
    run.counts, run.status, run.finished_at = counts, RetentionRun.Status.DONE, timezone.now()
    run.save(update_fields=["counts", "status", "finished_at"])
    audit_log_record(action="retention.database_maintenance", resource=run, metadata=counts)
    return run


def _dead_rows(cursor, table: str) -> int:
    cursor.execute("SELECT coalesce(n_dead_tup, 0) FROM pg_stat_user_tables "
                   "WHERE relid = %s::regclass", [table])
    row = cursor.fetchone()
    return row[0] if row else 0


def catch_up_cleanups() -> list[str]:
    """The cleanups a catch-up starts: each one no other cleanup chains to (those run
    after their head)."""
    chained = {cleanup.then for cleanup in CLEANUPS.values() if cleanup.then}
    return [name for name in CLEANUPS if name not in chained]


def comprehensive_cleanup_start(*, now: datetime | None = None) -> tuple[RetentionRun, list]:
    """Record the comprehensive run, email staff the report; returns the run and the
    cleanups the caller (the actor) enqueues."""
    now = now or timezone.now()
    report = retention_report(now)
    month = _last_month_totals(now)
    cleanups = catch_up_cleanups()
    run = RetentionRun.objects.create(
        policy="comprehensive", cleanup="comprehensive-cleanup", dry_run=False,
        started_at=now, finished_at=now, status=RetentionRun.Status.DONE,
        counts={"cleanups_started": len(cleanups),
                "would_delete_now": sum(row["would_delete"] for row in report),
                "would_archive_now": sum(row.get("would_archive", 0) for row in report)})
    lines = ["What each cleanup would remove now (catch-up runs have been started):"]
    lines += [f"- {row['cleanup']}: would delete {row['would_delete']:,}"
              + "".join(f", {key} {value:,}" for key, value in row.items()
                        if key not in ("cleanup", "would_delete") and isinstance(value, int))
              for row in report]
    lines += ["", "Runs of the last 30 days (deleted / archived / refused / failed):"]
    lines += [f"- {name}: {t['deleted']:,} / {t['archived']:,} / {t['refused']} / "
              f"{t['failed']} in {t['runs']} run(s)" for name, t in sorted(month.items())]
    email_staff_for_run(purpose="comprehensive-cleanup", subject="Monthly retention report",
                        body="\n".join(lines))
    audit_log_record(action="retention.comprehensive", resource=run, metadata=run.counts)
    return run, cleanups


def _last_month_totals(now: datetime) -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"runs": 0, "deleted": 0, "archived": 0, "refused": 0, "failed": 0})
    runs = RetentionRun.objects.filter(started_at__gte=now - timedelta(days=30),
                                       dry_run=False).exclude(cleanup="")
    for run in runs.only("cleanup", "status", "counts"):
        total = totals[run.cleanup]
        total["runs"] += 1
        total["deleted"] += run.counts.get("deleted", 0)
        total["archived"] += run.counts.get("archived", 0)
        total["refused"] += run.status == RetentionRun.Status.REFUSED
        total["failed"] += run.status == RetentionRun.Status.FAILED
    return totals
