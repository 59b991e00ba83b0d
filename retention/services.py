"""Retention cleanups: batched by primary key, short transactions, dry runs, legal holds.

A cleanup is a :class:`Cleanup`: which table, which rows are past the policy (``expired``:
SQL over the table's alias ``t``), which columns hold content (overwritten before the
row is deleted, so the deleted text does not wait in the row for the vacuum), and which
columns name users (a legal hold on one of them keeps the row). :func:`retention_run_start`
records a :class:`RetentionRun`; :func:`retention_run_step` handles up to a few batches
from the run's last id (the actor re-enqueues itself from there, so no job is one giant
transaction); the last step finishes the run and audits it, with counts only.

Important rows are kept: the archive to cold storage that must come before deleting them
is not built yet (the retention issue's next step), and nothing is deleted unarchived.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_log_record
from retention.models import LegalHold, RetentionRun
from retention.policy import Policy, policy

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
    expired: str  # SQL over alias t, with %(cutoff)s
    kept: dict[str, str]  # outcome → SQL over t of rows past the cutoff that are kept
    content_columns: tuple[str, ...]
    user_columns: tuple[str, ...]
    # Rows of other tables that refer to a deleted row and go with it: (model, column).
    dependents: tuple[tuple[str, str], ...] = ()
    then: str | None = None  # the cleanup the actor runs next, in the same schedule


CLEANUPS: dict[str, Cleanup] = {
    "chat-cleanup": Cleanup(
        policy_key="chat-messages", model="marketplace.chatmessage",
        expired="t.created_at < %(cutoff)s AND t.is_read AND NOT t.is_important",
        kept={"kept_unread": "t.created_at < %(cutoff)s AND NOT t.is_read",
              "kept_important": "t.created_at < %(cutoff)s AND t.is_read AND t.is_important"},
        content_columns=("body",), user_columns=("sender_id", "recipient_id")),
    "notification-cleanup": Cleanup(
        policy_key="notification-history", model="notifications.notification",
        expired="t.created_at < %(cutoff)s AND t.is_read AND NOT t.is_important",
        kept={"kept_unread": "t.created_at < %(cutoff)s AND NOT t.is_read",
              "kept_important": "t.created_at < %(cutoff)s AND t.is_read AND t.is_important"},
        content_columns=("title", "body"), user_columns=("user_id",)),
    # The audit trail's own cleanup is audited (each run's entry); critical entries stay
    # until the archive is built.
    "audit-log-cleanup": Cleanup(
        policy_key="audit-logs", model="audit.auditlog",
        expired="t.created_at < %(cutoff)s AND NOT t.is_critical",
        kept={"kept_critical": "t.created_at < %(cutoff)s AND t.is_critical"},
        content_columns=(), user_columns=("actor_id",)),
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
        would_delete = _count(cleanup, f"{cleanup.expired} AND {_not_held(cleanup)}", params)
        report.append({"cleanup": name, "policy": cleanup.policy_key, "cutoff": cutoff,
                       "would_delete": would_delete, **_kept_counts(cleanup, params)})
    return report


def _params(cleanup: Cleanup, *, cutoff: datetime, now: datetime) -> dict:
    return {"cutoff": cutoff, "now": now, "label": cleanup.model}


def _kept_counts(cleanup: Cleanup, params: dict) -> dict[str, int]:
    """Rows past the cutoff that the cleanup keeps, per reason, and those held."""
    counts = {outcome: _count(cleanup, condition, params)
              for outcome, condition in cleanup.kept.items()}
    counts["held"] = _count(cleanup, f"{cleanup.expired} AND NOT {_not_held(cleanup)}",
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
    cleanup = CLEANUPS[name]
    now = now or timezone.now()
    run = RetentionRun(policy=cleanup.policy_key, dry_run=dry_run, started_at=now)
    try:
        run.cutoff = cutoff_for(policy(cleanup.policy_key), now, cutoff)
    except RetentionRefused as exc:
        run.status, run.reason, run.finished_at = RetentionRun.Status.REFUSED, str(exc)[:200], now
        run.save()
        audit_log_record(action="retention.refused", resource=run, metadata={
            "policy": run.policy, "dry_run": dry_run}, is_critical=True)
        raise
    run.counts = {"deleted" if not dry_run else "would_delete": 0}
    run.save()
    return run


def policy_run_start(policy_key: str, *, dry_run: bool, counts: dict[str, int],
                     now: datetime | None = None,
                     cutoff: datetime | None = None) -> RetentionRun:
    """Record a run of policy ``policy_key`` whose work is not a :class:`Cleanup` (the
    inactive-accounts workflow, ``retention.accounts``), starting from ``counts``; a run
    whose safety checks fail is recorded as refused (and audited), and raises
    :class:`RetentionRefused`. (:func:`retention_run_start` does the same for a cleanup.)"""
    now = now or timezone.now()
    run = RetentionRun(policy=policy_key, dry_run=dry_run, started_at=now)
    try:
        run.cutoff = cutoff_for(policy(policy_key), now, cutoff)
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
        ids = _next_batch(cleanup, run, batch_size)
        if not ids:
            _finish(run, cleanup)
            return Step.FINISHED
        done = len(ids) if run.dry_run else _delete(cleanup, run, ids)
        key = "would_delete" if run.dry_run else "deleted"
        run.counts[key] = run.counts.get(key, 0) + done
        run.last_id = ids[-1]
        RetentionRun.objects.filter(pk=run.pk).update(counts=run.counts, last_id=run.last_id)
    return Step.MORE


def _next_batch(cleanup: Cleanup, run: RetentionRun, size: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.id FROM {_table(cleanup)} t WHERE t.id > %(after)s AND "
            f"{cleanup.expired} AND {_not_held(cleanup)} ORDER BY t.id LIMIT %(size)s",
            {**_run_params(run, cleanup), "after": run.last_id, "size": size})
        return [row[0] for row in cursor.fetchall()]


def _delete(cleanup: Cleanup, run: RetentionRun, ids: list[int]) -> int:
    """Overwrite the batch's content, then delete it, in one short transaction; rows that
    stopped matching since they were chosen (read flag, importance, a new hold) stay."""
    table = _table(cleanup)
    params = {**_run_params(run, cleanup), "ids": ids}
    still = f"t.id = ANY(%(ids)s) AND {cleanup.expired} AND {_not_held(cleanup)}"
    with transaction.atomic(), connection.cursor() as cursor:
        if cleanup.content_columns:
            blank = ", ".join(f"{column} = ''" for column in cleanup.content_columns)
            cursor.execute(f"UPDATE {table} t SET {blank} WHERE {still} RETURNING t.id",
                           params)
        else:
            cursor.execute(f"SELECT t.id FROM {table} t WHERE {still} FOR UPDATE", params)
        chosen = [row[0] for row in cursor.fetchall()]
        for model, column in cleanup.dependents:
            cursor.execute(f"DELETE FROM {apps.get_model(model)._meta.db_table} "
                           f"WHERE {column} = ANY(%s)", [chosen])
        cursor.execute(f"DELETE FROM {table} WHERE id = ANY(%s)", [chosen])
        return cursor.rowcount


def _run_params(run: RetentionRun, cleanup: Cleanup) -> dict:
    return _params(cleanup, cutoff=run.cutoff, now=run.started_at)


def _finish(run: RetentionRun, cleanup: Cleanup) -> None:
    run.counts.update(_kept_counts(cleanup, _run_params(run, cleanup)))
    run.status, run.finished_at = RetentionRun.Status.DONE, timezone.now()
    run.save(update_fields=["counts", "status", "finished_at"])
    audit_log_record(action="retention.run", resource=run, metadata={
        "policy": run.policy, "dry_run": run.dry_run, **run.counts})
    logger.info("retention run done", extra={"policy": run.policy, "dry_run": run.dry_run,
                                              **run.counts})
