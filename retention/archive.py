"""Archive before delete: rows leave PostgreSQL only once cold storage holds them, checked.

A batch of rows becomes one object in the "archive" store (S3 in production, versioned
and encrypted at rest), written by the platform's archive writer (:mod:`jobs.archive`):
gzip-compressed JSON Lines, one ``row_to_json`` per row, beside a ``.manifest.json`` with
its counts, id range and SHA-256. The object is read back and checked against the manifest
before :func:`archive_rows` returns; any failure raises :class:`ArchiveFailed` and the
caller deletes nothing. The caller deletes a row only if it still equals the archived copy
(:data:`ROW_HASH_SQL`), so an edit between archive and delete keeps the row.

:func:`archives_verify` (the daily backup verification) re-reads recent objects and
alerts staff when one no longer matches its manifest.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from audit.services import audit_log_record
from jobs.alerts import email_staff_for_run
from jobs.archive import (
    FORMAT,
    ROW_HASH_SQL,
    ArchiveFailed,
    archive_manifest_check,
    archive_manifest_write,
    archive_object_check,
    archive_object_write,
    table_rows,
)
from jobs.storage import object_store
from retention.models import ArchiveManifest, RetentionRun

logger = logging.getLogger("retention")

__all__ = ["FORMAT", "ROW_HASH_SQL", "ArchiveFailed", "Archived", "archive_check",
           "archive_rows", "archives_verify"]


@dataclass(frozen=True)
class Archived:
    manifest: ArchiveManifest
    row_hashes: dict[int, str]  # id → md5 of the row's JSON as archived


def _manifest_key(key: str) -> str:
    return key + ".manifest.json"


def archive_rows(*, run: RetentionRun, model_label: str, table: str,
                 ids: list[int]) -> Archived:
    """Write rows ``ids`` of ``table`` to cold storage and verify them.

    Raises:
      ArchiveFailed: the store refused or lost the object, or it does not read back as
        written.
    """
    rows = table_rows(table, values=ids)
    if not rows:
        raise ArchiveFailed("none of the rows to archive exist any more")
    day = run.started_at
    key = (f"{settings.ARCHIVE_PREFIX}{run.policy}/{model_label}/{day:%Y/%m/%d}/"
           f"run-{run.pk}-{rows[0][0]}-{rows[-1][0]}.jsonl.gz")
    store = object_store("archive")
    written = archive_object_write(store, key=key, rows=rows)
    manifest = {"format": FORMAT, "object": key, "policy": run.policy,
                "model": model_label, "run": run.pk, "rows": written.rows,
                "first_id": written.first_id, "last_id": written.last_id,
                "sha256": written.sha256, "size": written.size,
                "created_at": timezone.now().isoformat()}
    try:
        # The object was read back and checked by archive_object_write: the manifest now.
        archive_manifest_write(store, key=_manifest_key(key), manifest=manifest)
        problem = _manifest_check(store, manifest)
    except Exception as exc:
        raise ArchiveFailed(f"{type(exc).__name__} writing {key}") from exc
    if problem:
        raise ArchiveFailed(f"{key}: {problem}")
    record, _ = ArchiveManifest.objects.update_or_create(key=key, defaults={
        "policy": run.policy, "model_label": model_label, "run": run, "rows": written.rows,
        "first_id": written.first_id, "last_id": written.last_id, "sha256": written.sha256,
        "size": written.size, "status": ArchiveManifest.Status.VERIFIED, "problem": "",
        "checked_at": timezone.now()})
    return Archived(record, written.row_hashes)


def archive_check(store, manifest: dict) -> str:
    """What is wrong with the stored object and manifest against ``manifest`` ('' when
    nothing)."""
    return archive_object_check(store, manifest) or _manifest_check(store, manifest)


def _manifest_check(store, manifest: dict) -> str:
    return archive_manifest_check(store, key=_manifest_key(manifest["object"]),
                                  expected=manifest, fields=("object", "rows", "sha256", "size"))


def archives_verify(*, now: datetime | None = None, days: int | None = None) -> dict:
    """Backup verification: re-check every archive made in the last ``days``
    (``ARCHIVE_VERIFY_DAYS``) against its stored object; mark and alert on a mismatch.
    Returns counts (checked, mismatched)."""
    now = now or timezone.now()
    days = settings.ARCHIVE_VERIFY_DAYS if days is None else days
    store = object_store("archive")
    checked, mismatched = 0, []
    recent = ArchiveManifest.objects.filter(created_at__gte=now - timedelta(days=days))
    for record in recent.order_by("id").iterator():
        manifest = {"object": record.key, "rows": record.rows, "sha256": record.sha256,
                    "size": record.size}
        try:
            problem = archive_check(store, manifest)
        except Exception as exc:  # the store unreachable: a failed check, not a pass
            problem = f"{type(exc).__name__} reading the object"
        checked += 1
        status = ArchiveManifest.Status.MISMATCH if problem else ArchiveManifest.Status.VERIFIED
        ArchiveManifest.objects.filter(pk=record.pk).update(
            status=status, problem=problem[:200], checked_at=now)
        if problem:
            mismatched.append((record, problem))
    counts = {"checked": checked, "mismatched": len(mismatched)}
    if mismatched:
        lines = [f"- archive #{record.pk} ({record.model_label}, run {record.run_id}): "
                 f"{problem}" for record, problem in mismatched]
        email_staff_for_run(purpose="backup-verification",
                            subject=f"Backup verification: {len(mismatched)} archive(s) do "
                                    "not match their manifest",
                            body="These cold-storage archives no longer match what was written "
                         "(Retention › Archive manifests in admin):\n" + "\n".join(lines))
        for record, _ in mismatched:
            audit_log_record(action="retention.archive_mismatch", resource=record,
                             metadata={"archive": record.pk}, is_critical=True)
        logger.error("backup verification found mismatches", extra=counts)
    else:
        logger.info("backup verification passed", extra=counts)
    return counts
