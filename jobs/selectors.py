"""Reads of the jobs app: failed jobs."""

from typing import Any

from django.db.models import Count

from jobs.encryption import decrypt_json
from jobs.models import FailedJob, FailedJobStatus


def failed_job_payload(*, failed_job: FailedJob) -> dict[str, Any]:
    """The decrypted ``{"args", "kwargs", "options"}`` of a failed job (empty if unknown).

    Raises:
      cryptography.fernet.InvalidToken: no ``JOB_PAYLOAD_KEYS`` key decrypts it.
    """
    if not failed_job.payload:
        return {}
    return decrypt_json(failed_job.payload)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(item) for item in value]
    return f"<{type(value).__name__}>"


def failed_job_arguments_redacted(*, failed_job: FailedJob) -> dict[str, Any]:
    """The shape of a failed job's arguments, every value replaced by its type.

    What staff see in admin: enough to tell which call failed (keyword names, how many
    arguments, their types) without showing ids, addresses or tokens.
    """
    payload = failed_job_payload(failed_job=failed_job)
    if not payload:
        return {}
    return {"args": _redact(payload["args"]), "kwargs": _redact(payload["kwargs"])}


def failed_jobs_open_counts_by_queue() -> dict[str, int]:
    """Failed jobs nobody has retried or discarded yet, per queue (queues with none are
    absent)."""
    rows = (FailedJob.objects.filter(status=FailedJobStatus.FAILED).values("queue_name")
            .annotate(count=Count("pk")).order_by())
    return {row["queue_name"]: row["count"] for row in rows}
