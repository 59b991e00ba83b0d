"""Retention cleanups: batched by primary key, short transactions, dry runs, legal holds.

A cleanup is a :class:`Cleanup`: which table, which rows are past the policy (``expired``:
SQL over the table's alias ``t``), which columns hold content (overwritten before the
row is deleted, so the deleted text does not wait in the row for the vacuum), and which
columns name users (a legal hold on one of them keeps the row). :func:`retention_run_start`
records a :class:`RetentionRun`; :func:`retention_run_step` handles up to a few batches
from the run's last id (the actor re-enqueues itself from there, so no job is one giant
transaction); the last step finishes the run and audits it, with counts only.

Important rows (``archive``) go to cold storage first (:mod:`retention.archive`): a
batch's archive is written and verified before any row of the batch is deleted, an
archive that fails deletes nothing (the actor retries the step, then the failed-job
list), and a row edited since it was archived stays.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_log_record
from jobs.sessions import session_cache_delete
from retention.archive import ROW_HASH_SQL, archive_rows
from retention.models import LegalHold, RetentionRun
from retention.policy import Policy, policy
from retention.statistics import statistics_update

logger = logging.getLogger("retention")

BATCH_SIZE = 2000
#: How far the app's clock may be from PostgreSQL's before a run refuses (a clock mistake
#: would move every cutoff).
MAX_CLOCK_SKEW = timedelta(minutes=5)


class RetentionRefused(Exception):
    """The run's safety checks failed; nothing was deleted."""


@dataclass(frozen=True)
class Cleanup:
    policy_key: str
    model: str  # app_label.model_name
    expired: str  # SQL over alias t, with %(cutoff)s: deleted
    kept: dict[str, str]  # outcome → SQL over t of rows past the cutoff that are kept
    content_columns: tuple[str, ...]
    user_columns: tuple[str, ...]
    # SQL over t of rows past the cutoff that are archived to cold storage, then deleted.
    archive: str | None = None
    # Rows of other tables that refer to a deleted row and go with it: (model, column).
    dependents: tuple[tuple[str, str], ...] = ()
    # References from other tables that are set to NULL (their rows stay): (model, column).
    nullify: tuple[tuple[str, str], ...] = ()
    then: str | None = None  # the cleanup the actor runs next, in the same schedule

    @property
    def removable(self) -> str:
        """SQL over t: the rows this cleanup removes (deleted, or archived then deleted)."""
        return f"(({self.expired}) OR ({self.archive}))" if self.archive else self.expired


#: Email and push history that is finished (what is queued or sending is kept).
_FINISHED_EMAIL = "t.status NOT IN ('queued', 'sending')"

CLEANUPS: dict[str, Cleanup] = {
    "chat-cleanup": Cleanup(
        policy_key="chat-messages", model="marketplace.chatmessage",
        expired="t.created_at < %(cutoff)s AND t.is_read AND NOT t.is_important",
        archive="t.created_at < %(cutoff)s AND t.is_read AND t.is_important",
        kept={"kept_unread": "t.created_at < %(cutoff)s AND NOT t.is_read"},
        content_columns=("body",), user_columns=("sender_id", "recipient_id")),
    # In-app notifications, then the email and push history of the same period.
    "notification-cleanup": Cleanup(
        policy_key="notification-history", model="notifications.notification",
        expired="t.created_at < %(cutoff)s AND t.is_read AND NOT t.is_important",
        archive="t.created_at < %(cutoff)s AND t.is_read AND t.is_important",
        kept={"kept_unread": "t.created_at < %(cutoff)s AND NOT t.is_read"},
        content_columns=("title", "body"), user_columns=("user_id",),
        nullify=(("notifications.pushlog", "notification_id"),),
        then="push-log-cleanup"),
    "push-log-cleanup": Cleanup(
        policy_key="notification-history", model="notifications.pushlog",
        expired=f"t.created_at < %(cutoff)s AND {_FINISHED_EMAIL}",
        kept={"kept_unfinished": f"t.created_at < %(cutoff)s AND NOT {_FINISHED_EMAIL}"},
        content_columns=("context", "reason"), user_columns=("user_id",),
        then="email-log-cleanup"),
    "email-log-cleanup": Cleanup(
        policy_key="notification-history", model="notifications.emaillog",
        expired=f"t.created_at < %(cutoff)s AND {_FINISHED_EMAIL}",
        kept={"kept_unfinished": f"t.created_at < %(cutoff)s AND NOT {_FINISHED_EMAIL}"},
        content_columns=("context",), user_columns=("user_id",)),
    # The audit trail's own cleanup is audited (each run's entry); critical entries are
    # archived first.
    "audit-log-cleanup": Cleanup(
        policy_key="audit-logs", model="audit.auditlog",
        expired="t.created_at < %(cutoff)s AND NOT t.is_critical",
        archive="t.created_at < %(cutoff)s AND t.is_critical",
        kept={}, content_columns=(), user_columns=("actor_id",),
        then="admin-log-cleanup"),
    # Django admin's own action log (object names and change messages are free text).
    "admin-log-cleanup": Cleanup(
        policy_key="audit-logs", model="admin.logentry",
        expired="t.action_time < %(cutoff)s", kept={},
        content_columns=("object_repr", "change_message"), user_columns=("user_id",)),
    # Sessions idle or expired for 7 days (their refresh tokens with them), then tokens
    # revoked, inactive, expired or idle for 7 days.
    "session-cleanup": Cleanup(
        policy_key="session-data", model="marketplace.usersession",
        expired="(t.last_activity_at < %(cutoff)s OR t.expires_at < %(cutoff)s)",
        kept={}, content_columns=(), user_columns=("user_id",),
        dependents=(("marketplace.refreshtoken", "session_id"),),
        then="refresh-token-cleanup"),
    "refresh-token-cleanup": Cleanup(
        policy_key="session-data", model="marketplace.refreshtoken",
        expired="(t.revoked OR NOT t.is_active OR t.expires_at < %(now)s "
                "OR t.last_activity_at < %(cutoff)s)",
        kept={}, content_columns=(), user_columns=("user_id",)),
}


def _table(cleanup: Cleanup) -> str:
    return apps.get_model(cleanup.model)._meta.db_table


def _not_held(cleanup: Cleanup) -> str:
    """SQL: the row is under no active legal hold (of one of its users, or of itself)."""
    holds = LegalHold._meta.db_table
    users = " OR ".join(f"h.user_id = t.{column}" for column in cleanup.user_columns)
    return (f"NOT EXISTS (SELECT 1 FROM {holds} h WHERE h.released_at IS NULL AND "
            f"(({users}) OR (h.resource_type = %(label)s AND h.resource_id = t.id::text)))")


def cutoff_for(policy_: Policy, now: datetime, requested: datetime | None = None) -> datetime:
    """The instant before which the policy's rows are past their period: ``now`` less the
    period, or an earlier ``requested`` one (staff may clean less, never more).

    Raises:
      RetentionRefused: the policy keeps its data until the user deletes it; the cutoff
        would be younger than the period; or this process's clock is off PostgreSQL's
        (a clock mistake would move every cutoff).
    """
    if policy_.period is None:
        raise RetentionRefused(f"{policy_.data_type} are kept until the user deletes them.")
    cutoff = requested or now - policy_.period
    if cutoff > now - policy_.period:
        raise RetentionRefused(f"cutoff {cutoff.isoformat()} is younger than "
                               f"{policy_.period_label}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        database_now = cursor.fetchone()[0]
    if abs(database_now - now) > MAX_CLOCK_SKEW:
        raise RetentionRefused("this clock and PostgreSQL's differ by "
                               f"{abs(database_now - now)}")
    return cutoff


def retention_report(now: datetime | None = None) -> list[dict]:
    """Per cleanup: what it would delete now and what it keeps, as counts only."""
    now = now or timezone.now()
    report = []
    for name, cleanup in CLEANUPS.items():
        cutoff = now - policy(cleanup.policy_key).period
        params = _params(cleanup, cutoff=cutoff, now=now)
        row = {"cleanup": name, "policy": cleanup.policy_key, "cutoff": cutoff,
               "would_delete": _count(cleanup, f"{cleanup.expired} AND "
                                               f"{_not_held(cleanup)}", params)}
        if cleanup.archive:
            row["would_archive"] = _count(cleanup, f"{cleanup.archive} AND "
                                                   f"{_not_held(cleanup)}", params)
        report.append({**row, **_kept_counts(cleanup, params)})
    return report


def retention_run_total(run: RetentionRun) -> int:
    """How many rows the run will handle, counted now (for a progress bar)."""
    cleanup = CLEANUPS[run.cleanup]
    return _count(cleanup, f"t.id > %(after)s AND {cleanup.removable} AND "
                           f"{_not_held(cleanup)}", {**_run_params(run, cleanup),
                                                     "after": run.last_id})


def _params(cleanup: Cleanup, *, cutoff: datetime, now: datetime) -> dict:
    return {"cutoff": cutoff, "now": now, "label": cleanup.model}


def _kept_counts(cleanup: Cleanup, params: dict) -> dict[str, int]:
    """Rows past the cutoff that the cleanup keeps, per reason, and those held."""
    counts = {outcome: _count(cleanup, condition, params)
              for outcome, condition in cleanup.kept.items()}
    counts["held"] = _count(cleanup, f"{cleanup.removable} AND NOT {_not_held(cleanup)}",
                            params)
    return counts


def _count(cleanup: Cleanup, condition: str, params: dict) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {_table(cleanup)} t WHERE {condition}", params)
        return cursor.fetchone()[0]


def retention_run_start(name: str, *, dry_run: bool, now: datetime | None = None,
                        cutoff: datetime | None = None) -> RetentionRun:
    """Record a run of cleanup ``name``; a run whose safety checks fail is recorded as
    refused (and audited), and raises :class:`RetentionRefused`."""
    counts = {"deleted" if not dry_run else "would_delete": 0}
    if CLEANUPS[name].archive:
        counts["archived" if not dry_run else "would_archive"] = 0
    return retention_run_open(CLEANUPS[name].policy_key, name, dry_run=dry_run, now=now,
                              cutoff=cutoff, counts=counts)


def retention_run_open(policy_key: str, cleanup: str, *, dry_run: bool,
                       counts: dict[str, int], now: datetime | None = None,
                       cutoff: datetime | None = None,
                       precondition: Callable[[], None] | None = None) -> RetentionRun:
    """Record a run of policy ``policy_key`` from ``now`` with its cutoff (:func:`cutoff_for`)
    and zeroed ``counts``. Every cleanup opens its runs here.

    Raises:
      RetentionRefused: from :func:`cutoff_for`, or from ``precondition`` (a cleanup's own
        safety check); the run is recorded as refused and audited as critical.
    """
    now = now or timezone.now()
    run = RetentionRun(policy=policy_key, cleanup=cleanup, dry_run=dry_run, started_at=now)
    try:
        run.cutoff = cutoff_for(policy(policy_key), now, cutoff)
        if precondition is not None:
            precondition()
    except RetentionRefused as exc:
        run.status, run.reason, run.finished_at = RetentionRun.Status.REFUSED, str(exc)[:200], now
        run.save()
        audit_log_record(action="retention.refused", resource=run, metadata={
            "policy": run.policy, "dry_run": dry_run}, is_critical=True)
        raise
    run.counts = dict(counts)
    run.save()
    return run


class Step(StrEnum):
    MORE = "more"  # batches remain: go on from the run's last id
    FINISHED = "finished"  # this step finished the run
    OVER = "over"  # the run had ended already (a repeated message)


def retention_run_step(run_id: int, name: str, *, max_batches: int = 10,
                       batch_size: int | None = None) -> Step:
    """Handle up to ``max_batches`` batches (of ``BATCH_SIZE`` rows) of the run from its
    last id."""
    cleanup = CLEANUPS[name]
    batch_size = batch_size or BATCH_SIZE
    run = RetentionRun.objects.get(pk=run_id)
    if run.status != RetentionRun.Status.RUNNING:
        return Step.OVER
    for _ in range(max_batches):
        batch = _next_batch(cleanup, run, batch_size)
        if not batch:
            _finish(run, cleanup)
            return Step.FINISHED
        if run.dry_run:
            archive = sum(1 for _, archived in batch if archived)
            done = {"would_delete": len(batch) - archive, "would_archive": archive}
        else:
            done = _remove(cleanup, run, batch)
        for key, value in done.items():
            if value or key in run.counts:
                run.counts[key] = run.counts.get(key, 0) + value
        run.last_id = batch[-1][0]
        RetentionRun.objects.filter(pk=run.pk).update(counts=run.counts, last_id=run.last_id)
    return Step.MORE


def _next_batch(cleanup: Cleanup, run: RetentionRun, size: int) -> list[tuple[int, bool]]:
    """The next ``size`` removable rows after the run's last id: (id, to be archived)."""
    archived = f"({cleanup.archive})" if cleanup.archive else "false"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.id, {archived} FROM {_table(cleanup)} t WHERE t.id > %(after)s AND "
            f"{cleanup.removable} AND {_not_held(cleanup)} ORDER BY t.id LIMIT %(size)s",
            {**_run_params(run, cleanup), "after": run.last_id, "size": size})
        return cursor.fetchall()


def _blank(model, column: str) -> str:
    """SQL: the empty value that overwrites ``column``'s content."""
    field = model._meta.get_field(column.removesuffix("_id"))
    return "'{}'::jsonb" if field.get_internal_type() == "JSONField" else "''"


def _remove(cleanup: Cleanup, run: RetentionRun, batch: list[tuple[int, bool]]) -> dict:
    """Archive the batch's important rows (verified), then overwrite the content of the
    batch and delete it in one short transaction. Rows that stopped matching since they
    were chosen (read flag, importance, a new hold, an edit after archiving) stay.

    Raises:
      ArchiveFailed: nothing of the batch was deleted.
    """
    model = apps.get_model(cleanup.model)
    table = model._meta.db_table
    ids = [row_id for row_id, _ in batch]
    hashes: dict[int, str] = {}
    archives = 0
    to_archive = [row_id for row_id, archived in batch if archived]
    if to_archive:
        hashes = archive_rows(run=run, model_label=cleanup.model, table=table,
                              ids=to_archive).row_hashes
        archives = 1
    params = {**_run_params(run, cleanup), "ids": ids,
              "hashes": json.dumps({str(key): value for key, value in hashes.items()})}
    unchanged = (f"({cleanup.archive} AND {ROW_HASH_SQL} = "
                 f"(%(hashes)s::jsonb ->> t.id::text))") if cleanup.archive else "false"
    still = (f"t.id = ANY(%(ids)s) AND (({cleanup.expired}) OR {unchanged}) "
             f"AND {_not_held(cleanup)}")
    with transaction.atomic(), connection.cursor() as cursor:
        # Lock the rows that go (and learn which), then overwrite their content, so the
        # deleted text does not wait in the dead row for the vacuum.
        cursor.execute(f"SELECT t.id FROM {table} t WHERE {still} FOR UPDATE", params)
        chosen = [row[0] for row in cursor.fetchall()]
        if cleanup.content_columns and chosen:
            blank = ", ".join(f"{column} = {_blank(model, column)}"
                              for column in cleanup.content_columns)
            cursor.execute(f"UPDATE {table} SET {blank} WHERE id = ANY(%s)", [chosen])
        for other, column in cleanup.nullify:
            cursor.execute(f"UPDATE {apps.get_model(other)._meta.db_table} "
                           f"SET {column} = NULL WHERE {column} = ANY(%s)", [chosen])
        for other, column in cleanup.dependents:
            cursor.execute(f"DELETE FROM {apps.get_model(other)._meta.db_table} "
                           f"WHERE {column} = ANY(%s)", [chosen])
        cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [chosen])
        deleted = cursor.rowcount
    archived = sum(1 for row_id in chosen if row_id in hashes)
    # Archived, then changed or held before the delete: the row stays (and so does its copy).
    return {"deleted": deleted - archived, "archived": archived, "archives": archives,
            "kept_changed": len(to_archive) - archived}


def _run_params(run: RetentionRun, cleanup: Cleanup) -> dict:
    return _params(cleanup, cutoff=run.cutoff, now=run.started_at)


def django_sessions_purge(run: RetentionRun, *, batch_size: int = BATCH_SIZE) -> dict:
    """Django's own session rows (the admin's logins) that expired: deleted in batches,
    with their cached copies in Redis. Returns counts."""
    table = "django_session"
    if run.dry_run:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table} WHERE expire_date < %s",
                           [run.started_at])
            return {"would_delete_web_sessions": cursor.fetchone()[0]}
    deleted = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"DELETE FROM {table} WHERE session_key IN (SELECT session_key FROM {table} "
                f"WHERE expire_date < %s LIMIT %s FOR UPDATE SKIP LOCKED) "
                f"RETURNING session_key", [run.started_at, batch_size])
            keys = [row[0] for row in cursor.fetchall()]
        session_cache_delete(keys)
        deleted += len(keys)
        if len(keys) < batch_size:
            return {"web_sessions_deleted": deleted}


#: What a cleanup does once its batches are done, before the run's counts are final.
FINISHERS = {"session-cleanup": django_sessions_purge}


def _finish(run: RetentionRun, cleanup: Cleanup) -> None:
    run.counts.update(_kept_counts(cleanup, _run_params(run, cleanup)))
    if run.cleanup in FINISHERS:
        run.counts.update(FINISHERS[run.cleanup](run))
    if not run.dry_run:
        run.counts.update(statistics_update(run.cleanup, now=run.started_at))
    retention_run_close(run)


def retention_run_close(run: RetentionRun) -> None:
    """Mark ``run`` done with its counts and audit it (counts only, never rows or keys)."""
    run.status, run.finished_at = RetentionRun.Status.DONE, timezone.now()
    run.position = {}
    run.save(update_fields=["counts", "status", "finished_at", "position"])
    audit_log_record(action="retention.run", resource=run, metadata={
        "policy": run.policy, "dry_run": run.dry_run, **run.counts})
    logger.info("retention run done", extra={"policy": run.policy, "dry_run": run.dry_run,
                                              **run.counts})
