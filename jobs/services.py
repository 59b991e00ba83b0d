"""Writes of the jobs app: failed-job records, their retry and discard, failure streaks."""

import logging
import traceback as traceback_module
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dramatiq
from cryptography.fernet import InvalidToken
from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from dramatiq.errors import ActorNotFound

from jobs.alerts import email_staff
from jobs.encryption import decrypt_json, encrypt_json
from jobs.enqueue import enqueue_message_on_commit
from jobs.models import FailedJob, FailedJobStatus
from jobs.redis import get_redis, key
from jobs.scrub import argument_values, exception_chain, scrub
from jobs.signals import operator_action

logger = logging.getLogger(__name__)

DEFAULT_FAILED_JOB_RETENTION_DAYS = 30
EXCEPTION_MESSAGE_MAX_LENGTH = 2000
TRACEBACK_MAX_LENGTH = 20_000

# Message options that describe one delivery, not the job: a retry starts without them
# (a fresh retry budget, no stale eta).
DELIVERY_OPTIONS = frozenset(
    {"retries", "traceback", "requeue_timestamp", "redis_message_id", "eta",
     "first_failed_at"}
)


def _job_options(options: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if key not in DELIVERY_OPTIONS}


def _format_traceback(exception: BaseException | None, fallback: str, known: list[str]) -> str:
    """The scrubbed traceback, headed by the exception's cause chain (types and statuses
    only, never scrubbed away: they tell a refused connection from a provider's 5xx)."""
    if exception is not None and exception.__traceback__ is not None:
        text = "".join(traceback_module.format_exception(exception, limit=30))
    else:
        text = fallback or ""
    text = scrub(text, max_length=TRACEBACK_MAX_LENGTH, known=known)
    if exception is not None:
        text = f"Exception chain: {exception_chain(exception)}\n\n{text}"
    return text


def failed_job_record(
    *, message_id: str, actor_name: str, queue_name: str, args: Iterable[Any],
    kwargs: dict[str, Any], options: dict[str, Any], exception: BaseException | None,
    attempts: int, first_failed_at: datetime | None = None,
    failed_at: datetime | None = None,
) -> FailedJob:
    """Record a message that failed for good. Idempotent per ``message_id``.

    The arguments are stored encrypted; the exception message and the traceback are
    scrubbed of personal data, including any string argument of the job they quote. A
    message delivered again and failing again (at-least-once delivery) updates its row and
    returns it to ``failed``.
    """
    failed_at = failed_at or timezone.now()
    args = list(args)
    known = argument_values(args, kwargs)
    schedule_id = options.get("schedule_id")
    values = {
        "actor_name": actor_name,
        "queue_name": queue_name,
        "status": FailedJobStatus.FAILED,
        "payload": encrypt_json(
            {"args": args, "kwargs": kwargs, "options": _job_options(options)}
        ),
        "schedule_id": schedule_id if isinstance(schedule_id, int) else None,
        "exception_type": type(exception).__name__ if exception is not None else "Failed",
        "exception_message": scrub(
            str(exception) if exception is not None else "",
            max_length=EXCEPTION_MESSAGE_MAX_LENGTH, known=known,
        ),
        "traceback": _format_traceback(exception, options.get("traceback", ""), known),
        "attempts": attempts,
        "last_failed_at": failed_at,
    }
    job, _ = FailedJob.objects.update_or_create(
        message_id=message_id, defaults=values,
        create_defaults={**values, "first_failed_at": first_failed_at or failed_at},
    )
    return job


def failed_job_record_undecodable(*, message_id: str, queue_name: str, reason: str) -> FailedJob:
    """Record a message whose body could not be decoded; its actor and args are unknown."""
    now = timezone.now()
    values = {
        "actor_name": "", "queue_name": queue_name, "status": FailedJobStatus.FAILED,
        "payload": "", "exception_type": "UndecryptableMessage",
        "exception_message": scrub(reason, max_length=EXCEPTION_MESSAGE_MAX_LENGTH),
        "traceback": "", "attempts": 0, "last_failed_at": now,
    }
    job, _ = FailedJob.objects.update_or_create(
        message_id=message_id, defaults=values,
        create_defaults={**values, "first_failed_at": now},
    )
    return job


@dataclass
class FailedJobsRetryResult:
    retried: list[FailedJob] = field(default_factory=list)
    # (failed job, why it was not retried)
    skipped: list[tuple[FailedJob, str]] = field(default_factory=list)


@transaction.atomic
def failed_jobs_retry(*, failed_jobs: Iterable[FailedJob], user: Any) -> FailedJobsRetryResult:
    """Do each failed job's work again: its message again, with a fresh retry budget.

    The new message has the same actor, args, kwargs and job options (such as
    ``schedule_id``) and a new id, linked from the row. It is sent when the transaction
    commits. For a stateful actor (``jobs.stateful``) its record is first put back to its
    first state in the same transaction — a failed email to ``queued`` — so the job sends
    it again; a record with nothing left to do (already sent) is skipped. Rows not in
    ``failed`` status, of an unknown actor, or whose payload no key decrypts are skipped
    too; every skip is reported with its reason.
    """
    from jobs.stateful import stateful_actors

    stateful = stateful_actors()
    result = FailedJobsRetryResult()
    broker = dramatiq.get_broker()
    now = timezone.now()
    rows = FailedJob.objects.select_for_update().filter(pk__in=[job.pk for job in failed_jobs])
    for job in rows.order_by("pk"):
        if job.status != FailedJobStatus.FAILED:
            result.skipped.append((job, f"already {job.get_status_display().lower()}"))
            continue
        try:
            actor = broker.get_actor(job.actor_name)
        except ActorNotFound:
            result.skipped.append((job, "its actor is unknown"))
            continue
        try:
            payload = decrypt_json(job.payload)
        except (InvalidToken, ValueError):
            result.skipped.append((job, "its arguments cannot be decrypted"))
            continue
        record = stateful.get(job.actor_name)
        if record is not None and not record.prepare_retry(*payload["args"],
                                                           **payload["kwargs"]):
            result.skipped.append((job, "its work is already done, or its record is gone"))
            continue
        message = actor.message_with_options(
            args=tuple(payload["args"]), kwargs=payload["kwargs"], **payload["options"]
        )
        job.retry_message_id = enqueue_message_on_commit(actor, message)
        job.status = FailedJobStatus.RETRIED
        job.retried_at = now
        job.retried_by = user
        job.save(update_fields=["status", "retried_at", "retried_by", "retry_message_id"])
        operator_action.send(
            FailedJob, action="failed_job.retried", resource=job,
            actor=user, metadata={"actor_name": job.actor_name, "queue_name": job.queue_name,
                                  "message_id": job.message_id,
                                  "retry_message_id": job.retry_message_id},
        )
        result.retried.append(job)
    return result


@transaction.atomic
def failed_jobs_discard(*, failed_jobs: Iterable[FailedJob], user: Any) -> int:
    """Mark failed jobs discarded (the record is kept). Returns how many changed."""
    now = timezone.now()
    rows = FailedJob.objects.select_for_update().filter(
        pk__in=[job.pk for job in failed_jobs], status=FailedJobStatus.FAILED
    )
    count = 0
    for job in rows.order_by("pk"):
        job.status = FailedJobStatus.DISCARDED
        job.discarded_at = now
        job.discarded_by = user
        job.save(update_fields=["status", "discarded_at", "discarded_by"])
        operator_action.send(
            FailedJob, action="failed_job.discarded", resource=job,
            actor=user, metadata={"actor_name": job.actor_name, "queue_name": job.queue_name,
                                  "message_id": job.message_id},
        )
        count += 1
    return count


def failed_jobs_purge(*, older_than_days: int | None = None) -> int:
    """Delete failed-job rows whose last failure is older than the retention period.

    ``older_than_days`` defaults to ``FAILED_JOB_RETENTION_DAYS`` (30). Returns how many
    rows were deleted.
    """
    if older_than_days is None:
        older_than_days = getattr(
            settings, "FAILED_JOB_RETENTION_DAYS", DEFAULT_FAILED_JOB_RETENTION_DAYS
        )
    if older_than_days < 0:
        raise ValueError("older_than_days must not be negative")
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = FailedJob.objects.filter(last_failed_at__lt=cutoff).delete()
    logger.info("Failed jobs purged", extra={"deleted": deleted,
                                             "older_than_days": older_than_days})
    return deleted


# --- Failure streaks ------------------------------------------------------------------
# Staff get one email when a critical actor or a scheduled job starts failing, not one per
# failure: a streak is a Redis key set (NX) by the first failure and deleted by the next
# success. Losing the key (Redis restarted) at worst sends one more email.


def _streak_key(*, actor_name: str, schedule_id: int | None, critical: bool) -> str | None:
    if critical:
        subject = f"actor:{actor_name}"
    elif schedule_id is not None:
        subject = f"schedule:{schedule_id}"
    else:
        return None
    return key("failure-streak", subject)


def failure_streak_record_failure(*, failed_job: FailedJob, critical: bool) -> bool:
    """Start a failure streak for ``failed_job``'s actor or schedule; email staff if new.

    Applies to critical actors and to messages fired by a schedule; returns whether an
    email went out. The email names the actor, queue, schedule and exception type and
    links the failed job; it carries no arguments or exception message.
    """
    key = _streak_key(actor_name=failed_job.actor_name, schedule_id=failed_job.schedule_id,
                      critical=critical)
    if key is None or not get_redis().set(key, str(failed_job.pk), nx=True):
        return False
    link = settings.SITE_URL.rstrip("/") + reverse(
        "admin:jobs_failedjob_change", args=[failed_job.pk]
    )
    lines = [
        f"The job {failed_job.actor_name} on queue {failed_job.queue_name} failed after "
        f"{failed_job.attempts} attempt(s).",
        "",
        f"Actor: {failed_job.actor_name}",
        f"Queue: {failed_job.queue_name}",
    ]
    if failed_job.schedule_id is not None:
        lines.append(f"Schedule: #{failed_job.schedule_id}")
    lines += [
        f"Exception type: {failed_job.exception_type}",
        f"Failed job: {link}",
        "",
        "Further failures are not emailed until this job succeeds again.",
    ]
    email_staff(subject=f"Job failing: {failed_job.actor_name}", body="\n".join(lines))
    logger.warning("Failure streak started", extra={
        "actor": failed_job.actor_name, "queue": failed_job.queue_name,
        "schedule_id": failed_job.schedule_id, "failed_job_id": failed_job.pk,
    })
    return True


def failure_streak_end(*, actor_name: str, schedule_id: int | None, critical: bool) -> bool:
    """End the failure streak of an actor or schedule that just succeeded.

    Returns whether a streak was open.
    """
    key = _streak_key(actor_name=actor_name, schedule_id=schedule_id, critical=critical)
    if key is None:
        return False
    return bool(get_redis().delete(key))
