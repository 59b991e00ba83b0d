"""The temp-files cleanup: temporary files, objects and incomplete uploads older than 24 hours.

Temporary storage is two places, both settings:

- ``TEMP_FILES_DIR``, a local directory (any depth);
- ``TEMP_S3_PREFIX`` (``tmp/``) of the media store: objects and incomplete multipart
  uploads in the media bucket, or, under ``STORAGE_BACKEND=local``, the same prefix of the
  local media store (``LOCAL_STORAGE_DIR/<bucket>/tmp/``), so ``make run`` is cleaned the
  way production is. There a ``.partial`` file (an interrupted write) is the incomplete
  upload (:class:`jobs.storage.LocalStore`).

The convention the image pipeline follows: an upload and every processing leftover lives in
temporary storage until the upload is done, when the result is written to its final key and
the temporary copy deleted. A failed upload is simply left there, with no marker. So nothing
in temporary storage is kept for its own sake: whatever is older than the policy's 24 hours
is deleted whatever its name (a file by its modification time, an object by its
``LastModified``, a multipart upload by its ``Initiated``), ``.partial`` files included. An
empty directory older than 24 hours goes too; one emptied by a run has a fresh time and goes
the next day.

A run (:func:`temp_files_run_start`, then :func:`temp_files_run_step` until it finishes)
walks the three phases — local files, objects, multipart uploads — in key order, a batch of
at most :data:`BATCH_SIZE` entries at a time (objects deleted 1,000 per request, S3's
limit), and records where it is in ``RetentionRun.position``, so the actor re-enqueues itself
from there and no job walks millions of keys. A step repeated after a crash goes on from the
last recorded position: what it deleted is gone, what is young is counted again.

File names and keys may name a user: logs, counts and the audit entry never hold one; the
run's position holds the last key reached only while the run goes.
"""

from __future__ import annotations

import errno
import heapq
import os
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from jobs.storage import DELETE_MANY_LIMIT, ObjectMissing, object_store
from retention.models import RetentionRun
from retention.policy import policy
from retention.services import (
    RetentionRefused,
    Step,
    retention_run_close,
    retention_run_open,
)

POLICY_KEY = "temp-files"
TEMP_FILES_CLEANUP = "temp-files-cleanup"
#: Entries (files, objects or uploads) listed per batch; objects deleted in one request.
BATCH_SIZE = DELETE_MANY_LIMIT

#: What a run counts, per source: (name in a run that deletes, name in a dry run).
OUTCOMES: dict[str, tuple[str, str]] = {
    "local_files": ("local_files_deleted", "local_files_would_delete"),
    "local_dirs": ("local_dirs_deleted", "local_dirs_would_delete"),
    "objects": ("s3_objects_deleted", "s3_objects_would_delete"),
    "uploads": ("multipart_aborted", "multipart_would_abort"),
}
KEPT = "kept_young"  # past nothing: younger than the cutoff, in any source


def temp_files_locations_check() -> None:
    """Refuse temporary storage that is not: a ``TEMP_FILES_DIR`` that is ``/`` or holds
    the project or the local stores, an empty ``TEMP_S3_PREFIX`` (the whole bucket) or one
    that is not a folder (``tmp`` would match ``tmpl/``).

    Raises:
      RetentionRefused: naming the setting (never a path).
    """
    directory = Path(settings.TEMP_FILES_DIR).resolve()
    guarded = (Path(settings.BASE_DIR).resolve(), Path(settings.LOCAL_STORAGE_DIR).resolve())
    if directory == Path(directory.anchor) or any(
            directory == path or directory in path.parents for path in guarded):
        raise RetentionRefused("TEMP_FILES_DIR is the root, or holds the project or "
                               "LOCAL_STORAGE_DIR")
    prefix = settings.TEMP_S3_PREFIX
    if not prefix or not prefix.endswith("/") or prefix.startswith("/"):
        raise RetentionRefused("TEMP_S3_PREFIX must be a folder such as 'tmp/'")


def temp_files_run_start(*, dry_run: bool, now: datetime | None = None,
                         cutoff: datetime | None = None) -> RetentionRun:
    """Record a run of the temp-files cleanup from ``now`` (a cutoff as
    :func:`retention.services.cutoff_for` allows, or an earlier ``cutoff``).

    Raises:
      RetentionRefused: a safety check failed (the run is recorded and audited as refused).
    """
    zero = {name: 0 for name in _names(dry_run)}
    return retention_run_open(POLICY_KEY, TEMP_FILES_CLEANUP, dry_run=dry_run, now=now,
                              cutoff=cutoff, counts=zero,
                              precondition=temp_files_locations_check)


def temp_files_run_step(run_id: int, *, max_batches: int = 10,
                        batch_size: int | None = None) -> Step:
    """Handle up to ``max_batches`` batches of run ``run_id`` from its position."""
    batch_size = min(batch_size or BATCH_SIZE, DELETE_MANY_LIMIT)
    run = RetentionRun.objects.get(pk=run_id)
    if run.status != RetentionRun.Status.RUNNING or run.policy != POLICY_KEY:
        return Step.OVER
    for _ in range(max_batches):
        phase = run.position.get("phase", PHASES[0])
        found, after = SWEEPS[phase](run.cutoff, run.position.get("after"), batch_size,
                                     act=not run.dry_run)
        for name, value in _outcomes(found, run.dry_run).items():
            run.counts[name] = run.counts.get(name, 0) + value
        if after is not None:
            run.position = {"phase": phase, "after": after}
        elif phase != PHASES[-1]:
            run.position = {"phase": PHASES[PHASES.index(phase) + 1]}
        else:
            retention_run_close(run)
            return Step.FINISHED
        RetentionRun.objects.filter(pk=run.pk).update(counts=run.counts,
                                                      position=run.position)
    return Step.MORE


def temp_files_report(now: datetime | None = None) -> dict:
    """What a run would remove now, and keeps, as counts only (a dry run's walk, recorded
    nowhere); ``refused`` when a run would be."""
    now = now or timezone.now()
    cutoff = now - policy(POLICY_KEY).period
    row: dict = {"cleanup": TEMP_FILES_CLEANUP, "policy": POLICY_KEY, "cutoff": cutoff}
    try:
        temp_files_locations_check()
    except RetentionRefused as exc:
        return {**row, "refused": str(exc)}
    totals: Counter[str] = Counter()
    for phase in PHASES:
        after = None
        while True:
            found, after = SWEEPS[phase](cutoff, after, BATCH_SIZE, act=False)
            totals.update(found)
            if after is None:
                break
    return {**row, **{name: 0 for name in _names(dry_run=True)},
            **_outcomes(totals, dry_run=True)}


def _names(dry_run: bool) -> list[str]:
    return [names[dry_run] for names in OUTCOMES.values()] + [KEPT]


def _outcomes(found: Counter[str], dry_run: bool) -> dict[str, int]:
    named = {OUTCOMES[source][dry_run]: count for source, count in found.items()
             if source in OUTCOMES}
    return {**named, KEPT: found[KEPT]} if KEPT in found else named


# --- The sources: each lists one batch after ``after``, and says where the next begins ---
# A sweep returns (counts by source, the position after its batch, or None: source done).

def _sweep_local_files(cutoff: datetime, after: list[str] | None, limit: int, *,
                       act: bool) -> tuple[Counter[str], list[str] | None]:
    """Files and empty directories under TEMP_FILES_DIR; ``after``: the last path's parts."""
    counts: Counter[str] = Counter()
    seen = 0
    for parts, path, is_dir in _walk(str(settings.TEMP_FILES_DIR), (), tuple(after or ())):
        seen += 1
        try:
            modified = datetime.fromtimestamp(os.lstat(path).st_mtime, UTC)
        except FileNotFoundError:
            modified = None  # gone meanwhile
        if modified is not None and modified >= cutoff:
            counts[KEPT] += 1
        elif modified is not None and (not act or _remove(path, is_dir)):
            counts["local_dirs" if is_dir else "local_files"] += 1
        if seen == limit:
            return counts, list(parts)
    return counts, None


def _walk(directory: str, parts: tuple[str, ...], after: tuple[str, ...]
          ) -> Iterator[tuple[tuple[str, ...], str, bool]]:
    """(parts, path, is a directory) of every file (a symlink is a file: never followed)
    and every empty directory below ``directory``, in the order of their parts, after
    ``after``. Subtrees an earlier batch walked whole are not entered."""
    on_path = len(after) > len(parts) and after[:len(parts)] == parts
    for name in _names_from(directory, after[len(parts)] if on_path else None):
        here, path = (*parts, name), os.path.join(directory, name)
        try:
            is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
            empty = is_dir and next(_names_from(path, None), None) is None
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone meanwhile
        if is_dir and not empty:
            yield from _walk(path, here, after)
        elif here > after:
            yield here, path, is_dir


def _names_from(directory: str, start: str | None) -> Iterator[str]:
    """The names in ``directory`` from ``start`` on, in order, holding at most
    ``BATCH_SIZE`` of them at a time (a flat directory of a million files is scanned once
    per batch rather than sorted in memory)."""
    floor, inclusive = start, True
    while True:
        try:
            with os.scandir(directory) as listing:
                chunk = heapq.nsmallest(BATCH_SIZE, (
                    entry.name for entry in listing if floor is None or entry.name > floor
                    or (inclusive and entry.name == floor)))
        except FileNotFoundError:
            return
        yield from chunk
        if len(chunk) < BATCH_SIZE:
            return
        floor, inclusive = chunk[-1], False


def _remove(path: str, is_dir: bool) -> bool:
    """Delete a file, or an empty directory; False when it is gone, or no longer empty."""
    try:
        if is_dir:
            os.rmdir(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    except OSError as exc:
        if is_dir and exc.errno in (errno.ENOTEMPTY, errno.EEXIST):
            return False  # a file was written into it since
        raise
    return True


def _sweep_objects(cutoff: datetime, after: str | None, limit: int, *,
                   act: bool) -> tuple[Counter[str], str | None]:
    """Objects under TEMP_S3_PREFIX of the media store; ``after``: the last key."""
    store = object_store("media")
    listed = list(islice(store.list(settings.TEMP_S3_PREFIX, start_after=after or ""), limit))
    old = [item.key for item in listed if item.modified < cutoff]
    if act:
        store.delete_many(old)
    counts = Counter({"objects": len(old), KEPT: len(listed) - len(old)})
    return counts, listed[-1].key if len(listed) == limit else None


def _sweep_uploads(cutoff: datetime, after: str | None, limit: int, *,
                   act: bool) -> tuple[Counter[str], str | None]:
    """Incomplete multipart uploads under TEMP_S3_PREFIX; ``after``: the last key. A batch
    ends between keys (several uploads may share one), so it may pass ``limit``."""
    store = object_store("media")
    listed, more = [], False
    for upload in store.pending_uploads(settings.TEMP_S3_PREFIX, after_key=after or ""):
        if len(listed) >= limit and upload.key != listed[-1].key:
            more = True
            break
        listed.append(upload)
    counts: Counter[str] = Counter()
    for upload in listed:
        if upload.initiated >= cutoff:
            counts[KEPT] += 1
            continue
        try:
            if act:
                store.abort_upload(upload)
        except ObjectMissing:
            continue  # completed or aborted meanwhile
        counts["uploads"] += 1
    return counts, listed[-1].key if more else None


SWEEPS: dict[str, Callable[..., tuple[Counter[str], object]]] = {
    "local-files": _sweep_local_files,
    "objects": _sweep_objects,
    "uploads": _sweep_uploads,
}
PHASES = tuple(SWEEPS)
