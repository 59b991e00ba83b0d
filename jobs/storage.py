"""Object storage: the one module of the project that imports boto3.

Every app stores objects through :func:`object_store` ("media", "quarantine", "archive"),
which gives an S3 bucket (``STORAGE_BACKEND=s3``: AWS, or any S3-compatible endpoint such
as the tests' ``moto_server``) or a directory under ``LOCAL_STORAGE_DIR`` (``local``: the
default of ``make run``, so a newcomer needs no bucket). Both speak the same small
interface; what only S3 has (object versions) is a no-op locally. A local store's
incomplete upload is the ``.partial`` file an interrupted ``put`` leaves: it is listed and
aborted as S3 lists and aborts an incomplete multipart upload.

Listings are in key order (S3's: by UTF-8 bytes) and resume after a key, so a long walk
can stop and go on from where it was.

An object may be written in a cold storage class (``storage_class="GLACIER"``): S3 then
refuses to ``get`` it until it is restored, but :meth:`ObjectStore.stat` still answers with
its size and the SHA-256 S3 checked on upload, which is how such an object is verified
(:mod:`jobs.archive`). A local store has no storage classes: it keeps every object readable.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from django.conf import settings

KINDS = ("media", "quarantine", "archive")
#: The most keys one :meth:`ObjectStore.delete_many` takes (S3's DeleteObjects limit).
DELETE_MANY_LIMIT = 1000


class ObjectMissing(Exception):
    """No object under that key."""


class DeleteFailed(Exception):
    """The store refused to delete some of the objects (the message names no key)."""


@dataclass(frozen=True)
class StoredObject:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class PendingUpload:
    """A multipart upload started and never completed or aborted."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class ObjectInfo:
    """What the store says about an object without reading it."""

    size: int
    sha256: str  # hex; "" when the store did not report one
    storage_class: str | None  # "STANDARD", "GLACIER"...; None: the store has no classes


#: Storage classes whose objects S3 serves only once restored (GetObject is refused).
UNREADABLE_STORAGE_CLASSES = frozenset({"GLACIER", "DEEP_ARCHIVE"})


class ObjectStore(Protocol):
    name: str  # the bucket, or the directory

    def put(self, key: str, data: bytes, *, content_type: str = ...,
            metadata: dict[str, str] | None = None,
            storage_class: str | None = None) -> None: ...
    def get(self, key: str) -> bytes: ...
    def stat(self, key: str) -> ObjectInfo: ...
    def metadata(self, key: str) -> dict[str, str]: ...
    def list(self, prefix: str = "", *, start_after: str = "") -> Iterator[StoredObject]: ...
    def delete(self, key: str) -> int: ...
    def delete_many(self, keys: Sequence[str]) -> int: ...
    def pending_uploads(self, prefix: str = "", *,
                        after_key: str = "") -> Iterator[PendingUpload]: ...
    def abort_upload(self, upload: PendingUpload) -> None: ...


def object_store(kind: str) -> ObjectStore:
    """The store for ``kind`` (one of :data:`KINDS`) under the current settings."""
    if kind not in KINDS:
        raise ValueError(f"unknown store {kind!r}; one of {', '.join(KINDS)}")
    bucket = {"media": settings.AWS_STORAGE_BUCKET_NAME,
              "quarantine": settings.AWS_QUARANTINE_BUCKET_NAME,
              "archive": settings.AWS_ARCHIVE_BUCKET_NAME}[kind]
    if settings.STORAGE_BACKEND == "local":
        return LocalStore(Path(settings.LOCAL_STORAGE_DIR) / bucket)
    return S3Store(bucket)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- S3 --------------------------------------------------------------------------------

_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()


def s3_client():
    """A boto3 S3 client for the current settings (clients are thread-safe: one per
    configuration and process), with timeouts and boto's standard retries."""
    key = (settings.AWS_S3_ENDPOINT_URL, settings.AWS_S3_REGION_NAME,
           settings.AWS_ACCESS_KEY_ID, settings.AWS_SECRET_ACCESS_KEY, os.getpid())
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.session.Session().client(
                "s3", endpoint_url=settings.AWS_S3_ENDPOINT_URL or None,
                region_name=settings.AWS_S3_REGION_NAME,
                aws_access_key_id=settings.AWS_ACCESS_KEY_ID or None,
                aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY or None,
                config=Config(connect_timeout=settings.S3_CONNECT_TIMEOUT_SECONDS,
                              read_timeout=settings.S3_READ_TIMEOUT_SECONDS,
                              retries={"mode": "standard", "max_attempts": 3}))
            _clients[key] = client
        return client


class S3Store:
    def __init__(self, bucket: str) -> None:
        self.name = bucket
        self.client = s3_client()

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None,
            storage_class: str | None = None) -> None:
        """Write ``data`` under ``key`` (in ``storage_class``; the bucket's default, i.e.
        STANDARD, when None)."""
        # ChecksumSHA256: S3 itself refuses a body that arrived different from what we sent,
        # and keeps the checksum, which HeadObject returns (stat) even for a GLACIER object.
        import base64
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        extra = {"StorageClass": storage_class} if storage_class else {}
        self.client.put_object(Bucket=self.name, Key=key, Body=data, ContentType=content_type,
                               Metadata=metadata or {}, ChecksumAlgorithm="SHA256",
                               ChecksumSHA256=checksum, ServerSideEncryption="AES256",
                               **extra)

    def get(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.name, Key=key)["Body"].read()
        except self.client.exceptions.NoSuchKey as exc:
            raise ObjectMissing(key) from exc

    def _head(self, key: str, **extra) -> dict:
        from botocore.exceptions import ClientError
        try:
            return self.client.head_object(Bucket=self.name, Key=key, **extra)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise ObjectMissing(key) from exc
            raise

    def metadata(self, key: str) -> dict[str, str]:
        return self._head(key)["Metadata"]

    def stat(self, key: str) -> ObjectInfo:
        """Size, SHA-256 (as S3 checked it on upload) and storage class, from HeadObject:
        allowed on an object in any storage class, restored or not. An object uploaded in
        parts has a checksum of checksums ("…-N"), reported as ""."""
        import base64
        head = self._head(key, ChecksumMode="ENABLED")
        checksum = head.get("ChecksumSHA256") or ""
        sha256 = "" if not checksum or "-" in checksum else base64.b64decode(checksum).hex()
        return ObjectInfo(size=int(head["ContentLength"]), sha256=sha256,
                          storage_class=head.get("StorageClass") or "STANDARD")

    def list(self, prefix: str = "", *, start_after: str = "") -> Iterator[StoredObject]:
        """The objects under ``prefix`` in key order, from the first key after
        ``start_after``; pages of 1,000 are fetched as the iterator is consumed."""
        extra = {"StartAfter": start_after} if start_after else {}
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=prefix, **extra)
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredObject(item["Key"], item["Size"], item["LastModified"])

    def delete(self, key: str) -> int:
        """Delete the object with every version and delete marker it has (a versioned
        bucket would otherwise keep the deleted data); returns how many went."""
        gone = 0
        pages = self.client.get_paginator("list_object_versions").paginate(
            Bucket=self.name, Prefix=key)
        for page in pages:
            versions = [v for v in page.get("Versions", []) + page.get("DeleteMarkers", [])
                        if v["Key"] == key]
            if versions:
                self.client.delete_objects(Bucket=self.name, Delete={"Objects": [
                    {"Key": key, "VersionId": v["VersionId"]} for v in versions],
                    "Quiet": True})
                gone += len(versions)
        return gone

    def delete_many(self, keys: Sequence[str]) -> int:
        """Delete up to :data:`DELETE_MANY_LIMIT` objects in one request; returns how many
        keys were asked for. In a versioned bucket S3 answers with delete markers: those
        keys then go version by version (:meth:`delete`), so no deleted data stays behind.

        Raises:
          ValueError: more keys than one request takes.
          DeleteFailed: S3 refused some of them (the error codes, never the keys).
        """
        if len(keys) > DELETE_MANY_LIMIT:
            raise ValueError(f"{len(keys)} keys; at most {DELETE_MANY_LIMIT} per request")
        if not keys:
            return 0
        answer = self.client.delete_objects(Bucket=self.name, Delete={
            "Objects": [{"Key": key} for key in keys], "Quiet": False})
        if errors := answer.get("Errors"):
            codes = ", ".join(sorted({error.get("Code", "?") for error in errors}))
            raise DeleteFailed(f"{len(errors)} of {len(keys)} objects not deleted ({codes})")
        for deleted in answer.get("Deleted", []):
            if deleted.get("DeleteMarker"):
                self.delete(deleted["Key"])
        return len(keys)

    def pending_uploads(self, prefix: str = "", *,
                        after_key: str = "") -> Iterator[PendingUpload]:
        """Incomplete multipart uploads under ``prefix`` in key order, from the first key
        after ``after_key``."""
        extra = {"KeyMarker": after_key} if after_key else {}
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.name, Prefix=prefix, **extra)
        for page in pages:
            for item in page.get("Uploads", []):
                # moto_server ignores KeyMarker; S3 itself lists only keys after it.
                if item["Key"] > after_key:
                    yield PendingUpload(item["Key"], item["UploadId"], item["Initiated"])

    def abort_upload(self, upload: PendingUpload) -> None:
        """Raises :class:`ObjectMissing` when the upload is gone (completed or aborted)."""
        from botocore.exceptions import ClientError
        try:
            self.client.abort_multipart_upload(Bucket=self.name, Key=upload.key,
                                               UploadId=upload.upload_id)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchUpload"):
                raise ObjectMissing(upload.key) from exc
            raise


# --- Local directory (make run) ----------------------------------------------------------

class LocalStore:
    """Objects as files under a directory; metadata beside them in ``.meta/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.name = str(root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or self.root.resolve() not in path.parents:
            raise ValueError(f"key {key!r} leaves the store")
        return path

    def _meta_path(self, key: str) -> Path:
        return self.root / ".meta" / (sha256_hex(key.encode()) + ".json")

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream",
            metadata: dict[str, str] | None = None,
            storage_class: str | None = None) -> None:
        import json
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_bytes(data)
        partial.replace(path)  # readers never see half an object
        meta = self._meta_path(key)
        meta.parent.mkdir(parents=True, exist_ok=True)
        meta.write_text(json.dumps(metadata or {}))

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    def stat(self, key: str) -> ObjectInfo:
        """Size and SHA-256 of the file (read to hash it); no storage class."""
        return ObjectInfo(size=len(data := self.get(key)), sha256=sha256_hex(data),
                          storage_class=None)

    def metadata(self, key: str) -> dict[str, str]:
        import json
        if not self._path(key).exists():
            raise ObjectMissing(key)
        try:
            return json.loads(self._meta_path(key).read_text())
        except FileNotFoundError:
            return {}

    def _files(self, prefix: str) -> Iterator[tuple[str, Path]]:
        """(key, path) of every file under ``prefix``, ``.partial`` ones included."""
        if not self.root.exists():
            return
        for path in self.root.rglob("*"):
            key = path.relative_to(self.root).as_posix()
            if path.is_file() and key.startswith(prefix) and not key.startswith(".meta/"):
                yield key, path

    def list(self, prefix: str = "", *, start_after: str = "") -> Iterator[StoredObject]:
        # A development store: the listing is sorted in memory.
        for key, path in sorted(self._files(prefix)):
            if key > start_after and not key.endswith(".partial"):
                stat = path.stat()
                yield StoredObject(key, stat.st_size,
                                   datetime.fromtimestamp(stat.st_mtime, UTC))

    def delete(self, key: str) -> int:
        self._meta_path(key).unlink(missing_ok=True)
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return 0
        return 1

    def delete_many(self, keys: Sequence[str]) -> int:
        if len(keys) > DELETE_MANY_LIMIT:
            raise ValueError(f"{len(keys)} keys; at most {DELETE_MANY_LIMIT} per request")
        return sum(self.delete(key) for key in keys)

    def pending_uploads(self, prefix: str = "", *,
                        after_key: str = "") -> Iterator[PendingUpload]:
        """The ``.partial`` files interrupted writes left (``key`` is the object's, the
        upload id the partial file's name)."""
        partials = sorted((key.removesuffix(".partial"), path)
                          for key, path in self._files(prefix) if key.endswith(".partial"))
        for key, path in partials:
            if key > after_key:
                yield PendingUpload(key, path.name,
                                    datetime.fromtimestamp(path.stat().st_mtime, UTC))

    def abort_upload(self, upload: PendingUpload) -> None:
        try:
            self._path(upload.key).with_name(upload.upload_id).unlink()
        except FileNotFoundError as exc:
            raise ObjectMissing(upload.key) from exc
