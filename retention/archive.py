"""Archive before delete: rows leave PostgreSQL only once cold storage holds them, checked.

A batch of rows becomes one object in the "archive" store (S3 in production, versioned
and encrypted at rest): gzip-compressed JSON Lines, one ``row_to_json`` per row (every
column, as PostgreSQL holds it), beside a ``.manifest.json`` with its counts, id range and
SHA-256. The object is read back and checked against the manifest before
:func:`archive_rows` returns; any failure raises :class:`ArchiveFailed` and the caller
deletes nothing. The caller deletes a row only if it still equals the archived copy
(:data:`ROW_HASH_SQL`), so an edit between archive and delete keeps the row.

:func:`archives_verify` (the daily backup verification) re-reads recent objects and
alerts staff when one no longer matches its manifest.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from audit.services import audit_log_record
from jobs.alerts import email_staff
from jobs.storage import ObjectMissing, object_store, sha256_hex
from retention.models import ArchiveManifest, RetentionRun

logger = logging.getLogger("retention")

FORMAT = 1
#: SQL over alias t: the hash of a row as archived (compared before the row is deleted).
ROW_HASH_SQL = "md5(row_to_json(t)::text)"


class ArchiveFailed(Exception):
    """The archive could not be written or verified; nothing may be deleted."""


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
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t.id, row_to_json(t)::text FROM {table} t "
                       f"WHERE t.id = ANY(%s) ORDER BY t.id", [ids])
        rows = cursor.fetchall()
    if not rows:
        raise ArchiveFailed("none of the rows to archive exist any more")
    lines = "".join(text + "\n" for _, text in rows).encode()
    body = gzip.compress(lines, mtime=0)  # same rows, same bytes: a re-run is identical
    day = run.started_at
    key = (f"{settings.ARCHIVE_PREFIX}{run.policy}/{model_label}/{day:%Y/%m/%d}/"
           f"run-{run.pk}-{rows[0][0]}-{rows[-1][0]}.jsonl.gz")
    manifest = {"format": FORMAT, "object": key, "policy": run.policy,
                "model": model_label, "run": run.pk, "rows": len(rows),
                "first_id": rows[0][0], "last_id": rows[-1][0], "sha256": sha256_hex(body),
                "size": len(body), "created_at": timezone.now().isoformat()}
    store = object_store("archive")
    try:
        store.put(key, body, content_type="application/gzip",
                  metadata={"sha256": manifest["sha256"], "rows": str(len(rows))})
        store.put(_manifest_key(key), json.dumps(manifest, indent=1).encode(),
                  content_type="application/json")
        problem = archive_check(store, manifest)
    except Exception as exc:
        raise ArchiveFailed(f"{type(exc).__name__} writing {key}") from exc
    if problem:
        raise ArchiveFailed(f"{key}: {problem}")
    record, _ = ArchiveManifest.objects.update_or_create(key=key, defaults={
        "policy": run.policy, "model_label": model_label, "run": run, "rows": len(rows),
        "first_id": rows[0][0], "last_id": rows[-1][0], "sha256": manifest["sha256"],
        "size": len(body), "status": ArchiveManifest.Status.VERIFIED, "problem": "",
        "checked_at": timezone.now()})
    return Archived(record, {row_id: hashlib.md5(text.encode()).hexdigest()
                             for row_id, text in rows})


def archive_check(store, manifest: dict) -> str:
    """What is wrong with the stored object against ``manifest`` ('' when nothing)."""
    try:
        body = store.get(manifest["object"])
        stored_manifest = json.loads(store.get(_manifest_key(manifest["object"])))
    except ObjectMissing:
        return "object or manifest missing"
    if len(body) != manifest["size"]:
        return f"size {len(body)} is not {manifest['size']}"
    if sha256_hex(body) != manifest["sha256"]:
        return "SHA-256 differs from the manifest"
    try:
        rows = gzip.decompress(body).count(b"\n")
    except (OSError, EOFError):
        return "not a readable gzip stream"
    if rows != manifest["rows"]:
        return f"{rows} rows, manifest says {manifest['rows']}"
    if any(stored_manifest.get(field) != manifest[field]
           for field in ("object", "rows", "sha256", "size")):
        return "stored manifest differs from the record"
    return ""


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
        email_staff(subject=f"Backup verification: {len(mismatched)} archive(s) do not "
                            "match their manifest",
                    body="These cold-storage archives no longer match what was written "
                         "(Retention › Archive manifests in admin):\n" + "\n".join(lines))
        for record, _ in mismatched:
            audit_log_record(action="retention.archive_mismatch", resource=record,
                             metadata={"archive": record.pk}, is_critical=True)
        logger.error("backup verification found mismatches", extra=counts)
    else:
        logger.info("backup verification passed", extra=counts)
    return counts
