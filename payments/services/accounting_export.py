"""The daily journal export for the accounting system: one CSV per business day.

Every journal line whose entry was posted on that day in ``BUSINESS_TIME_ZONE``
(America/Toronto) — from local midnight to the next local midnight, so 23 hours on the day
daylight saving time starts and 25 on the day it ends — goes to the "archive" store (S3:
versioned, encrypted at rest) under ``accounting/journal/YYYY/MM/DD.csv``.

Format: UTF-8, comma-separated, CRLF line ends (RFC 4180), one header row
(:data:`CSV_COLUMNS`), one row per line ordered by posting time, entry and line. Amounts
are dollars with two decimals ("109.42"; "0.00" on the other side), never negative: a
line is a debit or a credit. Ids, accounts, amounts, tax type and province only: no name,
email, address or free text of anyone. A day with no entries gives a file with the header
alone, so the accounting system can tell an empty day from a missing one.

Entries are never backdated (``posted_at`` is when they were written), so a day is
complete once it is over, and an export re-run gives the same bytes: it is skipped when
the stored object already has them, and overwrites it otherwise.
"""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from jobs.storage import ObjectMissing, object_store, sha256_hex
from payments.models import Account, JournalLine

logger = logging.getLogger("payments")

PREFIX = "accounting/journal/"
CSV_COLUMNS = ["posted_date", "posted_at_utc", "entry_id", "line_id", "kind", "source_key",
               "payment_id", "account", "account_name", "debit", "credit", "currency",
               "tax_type", "province"]
ACCOUNT_NAMES = {account.value: account.label.split(" ", 1)[1] for account in Account}


def business_day_window(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of ``day`` in the business time zone."""
    zone = ZoneInfo(settings.BUSINESS_TIME_ZONE)
    start = datetime.combine(day, time(), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(), tzinfo=zone)
    return start.astimezone(ZoneInfo("UTC")), end.astimezone(ZoneInfo("UTC"))


def previous_business_day(now: datetime | None = None) -> date:
    """The business day before the one ``now`` falls on."""
    local = (now or timezone.now()).astimezone(ZoneInfo(settings.BUSINESS_TIME_ZONE))
    return local.date() - timedelta(days=1)


def accounting_export_key(day: date) -> str:
    return f"{PREFIX}{day:%Y/%m/%d}.csv"


def _dollars(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def accounting_export_csv(day: date) -> tuple[bytes, int]:
    """The CSV of ``day`` and how many lines it holds."""
    start, end = business_day_window(day)
    lines = (JournalLine.objects.filter(entry__posted_at__gte=start, entry__posted_at__lt=end)
             .select_related("entry").order_by("entry__posted_at", "entry_id", "id"))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for line in lines.iterator(chunk_size=2000):
        entry = line.entry
        posted = entry.posted_at.astimezone(ZoneInfo("UTC"))
        writer.writerow([day.isoformat(), posted.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), entry.pk,
                         line.pk, entry.kind, entry.source_key, entry.payment_id,
                         line.account, ACCOUNT_NAMES[line.account],
                         _dollars(line.debit_cents), _dollars(line.credit_cents),
                         entry.currency, line.tax_type, line.province])
        count += 1
    return buffer.getvalue().encode("utf-8"), count


def accounting_export(*, day: date) -> dict[str, object]:
    """Export ``day``'s journal lines to the archive store. Returns the key, line count,
    SHA-256 and whether the object was written (False: it already held these bytes)."""
    body, count = accounting_export_csv(day)
    key = accounting_export_key(day)
    digest = sha256_hex(body)
    store = object_store("archive")
    try:
        unchanged = store.stat(key).sha256 == digest
    except ObjectMissing:
        unchanged = False
    if not unchanged:
        store.put(key, body, content_type="text/csv; charset=utf-8",
                  metadata={"sha256": digest, "lines": str(count)})
    result = {"key": key, "lines": count, "sha256": digest, "written": not unchanged}
    logger.info("accounting export", extra={"day": day.isoformat(), **result})
    return result
