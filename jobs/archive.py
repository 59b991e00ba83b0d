"""Cold-storage archives of table rows: the one archive writer of the project.

A batch of rows of one table becomes one object: gzip-compressed JSON Lines, one
``row_to_json`` per row (every column, as PostgreSQL holds it), compressed with a fixed
mtime so the same rows always give the same bytes. :func:`archive_object_write` uploads it
and checks the store holds exactly those bytes before it returns; a manifest (JSON, always
in the readable STANDARD class) says what the object(s) hold and is checked the same way.
Any failure raises :class:`ArchiveFailed`: the caller then deletes or marks nothing.

How an object is checked depends on its storage class:

- readable (STANDARD, the local store): read back, and its size, SHA-256 and row count
  compared with what was written;
- archived (GLACIER, DEEP_ARCHIVE: S3 refuses GetObject until it is restored): the rows
  are counted in the bytes before upload, and the stored object's size, storage class and
  SHA-256 are compared from HeadObject (:meth:`jobs.storage.ObjectStore.stat`). S3 checks
  the SHA-256 we send with the upload (``ChecksumSHA256``: a body that arrived different is
  refused) and keeps it, so a matching checksum means S3 holds exactly the bytes we hashed.

Domain apps (retention's archive-before-delete, payments' manual archive) build keys and
manifests of their own on top of these functions; ``jobs`` knows no domain app.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from jobs.storage import UNREADABLE_STORAGE_CLASSES, ObjectMissing, ObjectStore, sha256_hex

#: The archive format, recorded in every manifest.
FORMAT = 1
#: SQL over alias t: the hash of a row as archived (compare it before changing the row).
ROW_HASH_SQL = "md5(row_to_json(t)::text)"
#: The class manifests are written in: they must stay readable to check anything.
MANIFEST_STORAGE_CLASS = "STANDARD"


class ArchiveFailed(Exception):
    """The archive could not be written or verified; nothing may be deleted or marked."""


@dataclass(frozen=True)
class ArchivedObject:
    """One verified object: what the manifest records of it, and each row's hash."""

    key: str
    rows: int
    first_id: int
    last_id: int
    sha256: str
    size: int
    storage_class: str
    row_hashes: dict[int, str] = field(repr=False)

    def describe(self) -> dict[str, Any]:
        """The object as a manifest lists it."""
        return {"object": self.key, "rows": self.rows, "first_id": self.first_id,
                "last_id": self.last_id, "sha256": self.sha256, "size": self.size,
                "storage_class": self.storage_class}


def table_rows(table: str, *, column: str = "id", values: list[int]) -> list[tuple[int, str]]:
    """(id, ``row_to_json``) of the rows of ``table`` whose ``column`` is in ``values``,
    by id. ``table`` and ``column`` are identifiers from code, never from input."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t.id, row_to_json(t)::text FROM {table} t "
                       f"WHERE t.{column} = ANY(%s) ORDER BY t.id", [values])
        return cursor.fetchall()


def archive_body(rows: list[tuple[int, str]]) -> bytes:
    """The object's bytes: the rows' JSON, one per line, gzip-compressed reproducibly."""
    return gzip.compress("".join(text + "\n" for _, text in rows).encode(), mtime=0)


def archive_object_write(store: ObjectStore, *, key: str, rows: list[tuple[int, str]],
                         storage_class: str = "STANDARD") -> ArchivedObject:
    """Upload ``rows`` (from :func:`table_rows`) as one object under ``key`` and verify it.

    Raises:
      ArchiveFailed: no rows, the store refused the object, or it does not check out.
    """
    if not rows:
        raise ArchiveFailed(f"no rows to archive under {key}")
    body = archive_body(rows)
    archived = ArchivedObject(
        key=key, rows=len(rows), first_id=rows[0][0], last_id=rows[-1][0],
        sha256=sha256_hex(body), size=len(body), storage_class=storage_class,
        row_hashes={row_id: hashlib.md5(text.encode()).hexdigest() for row_id, text in rows})
    # Checked before upload too: an archived object cannot be read back to count its rows.
    if _gzip_lines(body) != len(rows):
        raise ArchiveFailed(f"{key}: the compressed body does not hold {len(rows)} rows")
    try:
        store.put(key, body, content_type="application/gzip",
                  metadata={"sha256": archived.sha256, "rows": str(len(rows))},
                  storage_class=None if storage_class == "STANDARD" else storage_class)
        problem = archive_object_check(store, archived.describe())
    except Exception as exc:
        raise ArchiveFailed(f"{type(exc).__name__} writing {key}") from exc
    if problem:
        raise ArchiveFailed(f"{key}: {problem}")
    return archived


def archive_object_check(store: ObjectStore, described: dict[str, Any]) -> str:
    """What is wrong with the stored object against its manifest entry ('' when nothing).
    ``described`` has ``object``, ``rows``, ``sha256``, ``size`` and, optionally,
    ``storage_class`` (STANDARD when absent). Store errors other than a missing object
    propagate: an unreachable store is not a pass."""
    storage_class = described.get("storage_class") or "STANDARD"
    key = described["object"]
    if storage_class in UNREADABLE_STORAGE_CLASSES:
        try:
            info = store.stat(key)
        except ObjectMissing:
            return "object missing"
        if info.size != described["size"]:
            return f"size {info.size} is not {described['size']}"
        if info.storage_class is not None and info.storage_class != storage_class:
            return f"storage class {info.storage_class} is not {storage_class}"
        if info.sha256 != described["sha256"]:
            return "SHA-256 differs from the manifest" if info.sha256 else "no SHA-256 stored"
        return ""
    try:
        body = store.get(key)
    except ObjectMissing:
        return "object missing"
    if len(body) != described["size"]:
        return f"size {len(body)} is not {described['size']}"
    if sha256_hex(body) != described["sha256"]:
        return "SHA-256 differs from the manifest"
    rows = _gzip_lines(body)
    if rows is None:
        return "not a readable gzip stream"
    if rows != described["rows"]:
        return f"{rows} rows, manifest says {described['rows']}"
    return ""


def archive_manifest_write(store: ObjectStore, *, key: str, manifest: dict[str, Any]) -> str:
    """Upload ``manifest`` as JSON under ``key`` (STANDARD). Returns its SHA-256.
    Store errors propagate (the caller wraps them in :class:`ArchiveFailed`)."""
    body = json.dumps(manifest, indent=1, sort_keys=True).encode()
    store.put(key, body, content_type="application/json")
    return sha256_hex(body)


def archive_manifest_check(store: ObjectStore, *, key: str, expected: dict[str, Any],
                           fields: tuple[str, ...]) -> str:
    """What differs between the stored manifest and ``expected`` on ``fields`` ('' when
    nothing)."""
    try:
        stored = json.loads(store.get(key))
    except ObjectMissing:
        return "manifest missing"
    except ValueError:
        return "manifest is not JSON"
    if any(stored.get(name) != expected[name] for name in fields):
        return "stored manifest differs from the record"
    return ""


def _gzip_lines(body: bytes) -> int | None:
    try:
        return gzip.decompress(body).count(b"\n")
    except (OSError, EOFError):
        return None
