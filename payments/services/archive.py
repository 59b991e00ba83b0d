"""The manual archive of old payment records to cold storage (``manage.py archive_payments``;
no schedule runs it). Rows are marked archived, never deleted: the 7-year delete guard
still holds them, and only the manual end-of-retention removal may delete them later.

Payments created before the cutoff and not yet archived go by batches of ids. A batch
writes, through the platform's archive writer (:mod:`jobs.archive`), one object per table
to the "archive" store in the GLACIER storage class — the payments, their tax lines, their
journal entries and the entries' lines, each gzip JSON Lines of ``row_to_json`` — and a
``manifest.json`` (STANDARD, readable) with each object's key, row count, id range, size
and SHA-256. Every object is verified before anything is marked: a GLACIER object cannot
be read back until restored, so the store's HeadObject must report the size, the storage
class and the SHA-256 S3 checked on upload; the manifest is read back. Only then does one
short transaction set ``archived_at`` on the batch's payments (and their entries) that
still equal the archived copy (:data:`jobs.archive.ROW_HASH_SQL`): a payment changed in
between (a late refund) is left for the next run. An upload that cannot be verified raises
:class:`jobs.archive.ArchiveFailed` and marks nothing of its batch; batches verified
before it stay archived. Each verified batch is a :class:`payments.models.PaymentArchive`,
and each run (finished or failed) an audit entry with its counts.

Encrypted columns (billing details) are archived as stored: encrypted, readable with the
project's keys (jobs.encryption) as long as the key that wrote them is kept.
"""

from __future__ import annotations

import calendar
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from audit.services import audit_log_record
from jobs.archive import (
    FORMAT,
    ROW_HASH_SQL,
    ArchivedObject,
    ArchiveFailed,
    archive_manifest_check,
    archive_manifest_write,
    archive_object_write,
    table_rows,
)
from jobs.storage import object_store
from payments.models import JournalEntry, JournalLine, Payment, PaymentArchive, PaymentTaxLine

logger = logging.getLogger("payments")

PREFIX = "payments/archive/"
STORAGE_CLASS = "GLACIER"
BATCH_SIZE = 500
#: The tables a batch archives, in the manifest's order: (table, column holding the ids
#: the rows are selected by, which ids: "payments" or "entries").
TABLES = ((Payment._meta.db_table, "id", "payments"),
          (PaymentTaxLine._meta.db_table, "payment_id", "payments"),
          (JournalEntry._meta.db_table, "payment_id", "payments"),
          (JournalLine._meta.db_table, "entry_id", "entries"))
AGE = re.compile(r"^(\d+)([ymd])$")


def archive_cutoff(older_than: str, *, now: datetime | None = None) -> datetime:
    """``now`` less ``older_than``: "2y" (years), "18m" (calendar months, the day clamped
    to the month's last), "90d" (days).

    Raises:
      ValueError: not such an age, or zero.
    """
    now = now or timezone.now()
    match = AGE.match(older_than.strip().lower())
    if not match or int(match[1]) == 0:
        raise ValueError(f"{older_than!r} is not an age such as 2y, 18m or 90d")
    count, unit = int(match[1]), match[2]
    if unit == "d":
        return now - timedelta(days=count)
    year, month = divmod(now.year * 12 + now.month - 1 - count * (12 if unit == "y" else 1), 12)
    day = min(now.day, calendar.monthrange(year, month + 1)[1])
    return now.replace(year=year, month=month + 1, day=day)


def _candidates(cutoff: datetime):
    return Payment.objects.filter(created_at__lt=cutoff, archived_at__isnull=True)


def payments_archive_count(*, cutoff: datetime) -> dict[str, int]:
    """What a run with ``cutoff`` would archive, counted (the dry run)."""
    payments = _candidates(cutoff)
    return {"payments": payments.count(),
            "tax_lines": PaymentTaxLine.objects.filter(payment__in=payments).count(),
            "journal_entries": JournalEntry.objects.filter(payment__in=payments).count(),
            "journal_lines": JournalLine.objects.filter(entry__payment__in=payments).count()}


@dataclass(frozen=True)
class BatchArchived:
    archive: PaymentArchive
    last_id: int
    payments: int  # in the batch
    marked: int  # of those, marked archived (the rest changed since they were read)


def payments_archive_batch(*, cutoff: datetime, after_id: int = 0,
                           batch_size: int = BATCH_SIZE, now: datetime | None = None,
                           storage_class: str = STORAGE_CLASS) -> BatchArchived | None:
    """Archive the next batch of payments after ``after_id``; None when none is left.

    Raises:
      ArchiveFailed: an object or the manifest could not be written or verified; nothing
        of the batch was marked.
    """
    now = now or timezone.now()
    ids = list(_candidates(cutoff).filter(pk__gt=after_id).order_by("pk")
               .values_list("pk", flat=True)[:batch_size])
    if not ids:
        return None
    entry_ids = list(JournalEntry.objects.filter(payment_id__in=ids).order_by("pk")
                     .values_list("pk", flat=True))
    folder = f"{PREFIX}{now:%Y/%m/%d}/run-{now:%Y%m%dT%H%M%S}-payments-{ids[0]}-{ids[-1]}/"
    store = object_store("archive")
    written: dict[str, ArchivedObject] = {}
    for table, column, selected_by in TABLES:
        rows = table_rows(table, column=column,
                          values=ids if selected_by == "payments" else entry_ids)
        if rows:
            written[table] = archive_object_write(store, key=f"{folder}{table}.jsonl.gz",
                                                  rows=rows, storage_class=storage_class)
    manifest = {"format": FORMAT, "kind": "payments", "cutoff": cutoff.isoformat(),
                "created_at": now.isoformat(), "storage_class": storage_class,
                "first_payment_id": ids[0], "last_payment_id": ids[-1],
                "counts": {table: (written[table].rows if table in written else 0)
                           for table, _, _ in TABLES},
                "objects": [{"table": table, **archived.describe()}
                            for table, archived in written.items()]}
    manifest_key = f"{folder}manifest.json"
    try:
        manifest_sha256 = archive_manifest_write(store, key=manifest_key, manifest=manifest)
        problem = archive_manifest_check(store, key=manifest_key, expected=manifest,
                                         fields=("counts", "objects", "first_payment_id",
                                                 "last_payment_id"))
    except Exception as exc:
        raise ArchiveFailed(f"{type(exc).__name__} writing {manifest_key}") from exc
    if problem:
        raise ArchiveFailed(f"{manifest_key}: {problem}")
    payment_table, entry_table = Payment._meta.db_table, JournalEntry._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {payment_table} t SET archived_at = %(now)s WHERE t.id = ANY(%(ids)s) "
            f"AND t.archived_at IS NULL AND {ROW_HASH_SQL} = (%(hashes)s::jsonb ->> "
            "t.id::text) RETURNING t.id",
            {"now": now, "ids": ids, "hashes": _json(written[payment_table].row_hashes)})
        marked = [row[0] for row in cursor.fetchall()]
        if entry_table in written:
            cursor.execute(
                f"UPDATE {entry_table} t SET archived_at = %(now)s WHERE "
                f"t.payment_id = ANY(%(marked)s) AND t.archived_at IS NULL AND "
                f"{ROW_HASH_SQL} = (%(hashes)s::jsonb ->> t.id::text)",
                {"now": now, "marked": marked,
                 "hashes": _json(written[entry_table].row_hashes)})
        record = PaymentArchive.objects.create(
            manifest_key=manifest_key, manifest_sha256=manifest_sha256,
            storage_class=storage_class, cutoff=cutoff, first_payment_id=ids[0],
            last_payment_id=ids[-1], counts=manifest["counts"],
            objects_written=manifest["objects"], payments_marked=len(marked), created_at=now)
    return BatchArchived(archive=record, last_id=ids[-1], payments=len(ids),
                         marked=len(marked))


def payments_archive_run(*, cutoff: datetime, batch_size: int = BATCH_SIZE,
                         storage_class: str = STORAGE_CLASS,
                         progress: Callable[[int], None] | None = None,
                         actor: Any = None) -> dict[str, Any]:
    """Archive every payment created before ``cutoff``, batch by batch, and record the run
    in the audit log. ``progress`` is called after each batch with the payments done.
    Returns counts: archives, payments (marked), kept_changed, and rows per table.

    Raises:
      ArchiveFailed: a batch could not be verified (it marked nothing; the run is audited
        as failed with what was archived before it).
    """
    counts: dict[str, Any] = {"archives": 0, "payments": 0, "kept_changed": 0,
                              "rows": {table: 0 for table, _, _ in TABLES}}
    metadata = {"cutoff": cutoff.isoformat(), "storage_class": storage_class}
    after_id, done = 0, 0
    while True:
        try:
            batch = payments_archive_batch(cutoff=cutoff, after_id=after_id,
                                           batch_size=batch_size,
                                           storage_class=storage_class)
        except ArchiveFailed as exc:
            audit_log_record(action="payments.archive_failed", resource=PaymentArchive,
                             actor=actor, is_critical=True,
                             metadata={**metadata, **counts, "after_payment_id": after_id,
                                       "error": str(exc)[:200]})
            logger.error("payment archive failed", extra={"after_payment_id": after_id})
            raise
        if batch is None:
            break
        after_id, done = batch.last_id, done + batch.payments
        counts["archives"] += 1
        counts["payments"] += batch.marked
        counts["kept_changed"] += batch.payments - batch.marked
        for table, rows in batch.archive.counts.items():
            counts["rows"][table] += rows
        if progress is not None:
            progress(done)
    audit_log_record(action="payments.archived", resource=PaymentArchive, actor=actor,
                     metadata={**metadata, **counts})
    logger.info("payments archived", extra={"archives": counts["archives"],
                                            "payments": counts["payments"]})
    return counts


def _json(value: dict[int, str]) -> str:
    import json

    return json.dumps({str(key): digest for key, digest in value.items()})
