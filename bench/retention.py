"""The retention deletion benchmark behind ``manage.py benchretention``.

It loads ``count`` expired chat messages and ``count`` to keep (interleaved by id, so the
cleanup has to skip kept rows), runs the chat cleanup the way production does (the
``retention_cleanup`` actor on a real ``runworkergroup batch`` worker, re-enqueueing itself
step by step) while a writer thread inserts a message every ``WRITER_INTERVAL_S``, each in
its own transaction as a chat view would, and measures the deletion's wall time and every
insert's latency. Afterwards it checks that exactly the expired rows went and that no kept
row was changed.

The mix of rows, by position ``i`` in 1 … 2·count (ids follow ``i``): odd ``i`` are
expired (read, not important, 91 to 455 days old); even ``i`` are kept, by ``(i / 2) %
200``: 30 % unread and old, 20 % unread, important and old (kept as unread: the read
important ones are archived, then deleted, which is not this figure), 49.5 % recent
(under 89 days, read or not), and 0.5 % expired-looking rows of a user under a legal hold.
"""

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from bench.runner import (
    BenchConfig,
    PostgresBackendsCpu,
    WorkerProcesses,
    percentile,
    process_tree_cpu_s,
    start_workers,
)
from marketplace.models import ChatMessage, User
from retention.models import LegalHold, RetentionRun
from retention.services import CLEANUPS

CLEANUP = "chat-cleanup"
USER_PREFIX = "bench-ret-"
USER_DOMAIN = "@bench.jobsite.invalid"
WRITER_INTERVAL_S = 0.010
LOAD_CHUNK = 200_000  # positions per INSERT … SELECT (each its own transaction)
POLL_S = 0.2
# Out of every 200 kept rows (by (i / 2) % 200): which slots are which kind.
SLOTS = {"kept_unread": range(0, 60), "kept_important": range(60, 100),
         "recent": range(100, 199), "held": range(199, 200)}


def expected_counts(count: int) -> dict[str, int]:
    """Rows of each kind that :func:`prepare` loads for ``count``."""
    counts = {"expired": count}
    for kind, slots in SLOTS.items():
        # kept row k (1 … count) is in slot k % 200
        counts[kind] = sum(len(range(slot or 200, count + 1, 200)) for slot in slots)
    return counts


@dataclass
class Prepared:
    count: int
    user_ids: list[int]
    held_user_id: int
    hold_id: int
    first_id: int
    last_id: int
    kept_checksum: tuple[int, int]  # (rows, sum of row hashes) of the kept rows
    seconds: float


def _table() -> str:
    return ChatMessage._meta.db_table


def bench_user_ids() -> list[int]:
    return list(User.objects.filter(email__startswith=USER_PREFIX, email__endswith=USER_DOMAIN)
                .order_by("pk").values_list("pk", flat=True))


def delete_bench_data() -> None:
    """Delete every benchmark user of any earlier run, their messages and holds (set-based:
    the ORM would load a million rows to cascade them)."""
    ids = bench_user_ids()
    if not ids:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {_table()} WHERE sender_id = ANY(%(ids)s) "
                       "OR recipient_id = ANY(%(ids)s)", {"ids": ids})
    LegalHold.objects.filter(user_id__in=ids).delete()
    User.objects.filter(pk__in=ids).delete()


def foreign_expired_rows() -> int:
    """Chat messages past the cleanup's cutoff that are not the benchmark's: the cleanup
    would delete them too, so the benchmark refuses to run beside them."""
    cleanup = CLEANUPS[CLEANUP]
    cutoff = timezone.now() - _period()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {_table()} t WHERE {cleanup.expired}",
                       {"cutoff": cutoff})
        return cursor.fetchone()[0]


def _period():
    from retention.policy import policy

    return policy(CLEANUPS[CLEANUP].policy_key).period


def prepare(count: int, progress: Callable[[str], None] = lambda _: None) -> Prepared:
    """Load the users and the 2·``count`` messages in set-based SQL, then VACUUM ANALYZE
    (as autovacuum would have left a table in production)."""
    started = time.monotonic()
    run_id = uuid.uuid4().hex[:8]
    regular = max(10, count // 500)
    User.objects.bulk_create(
        [User(email=f"{USER_PREFIX}{run_id}-{n}{USER_DOMAIN}", first_name="Bench",
              last_name=str(n), password="!") for n in range(regular + 1)], batch_size=5000)
    ids = bench_user_ids()
    held_user_id, user_ids = ids[-1], ids[:-1]
    hold = LegalHold.objects.create(user_id=held_user_id, reason="Retention benchmark")
    slot = "(s.i / 2) %% 200"
    kind = {name: f"{slot} BETWEEN {r.start} AND {r.stop - 1}" for name, r in SLOTS.items()}
    old = ("now() - interval '91 days' - (s.i %% 365) * interval '1 day' "
           "- (s.i %% 86400) * interval '1 second'")
    recent = "now() - (s.i %% 89) * interval '1 day' - (s.i %% 86400) * interval '1 second'"
    users = "%(users)s::bigint[]"
    sql = f"""
        INSERT INTO {_table()} (thread_id, sender_id, recipient_id, body, is_read,
                                is_important, created_at)
        SELECT md5('thread-' || (s.i %% %(threads)s))::uuid,
               CASE WHEN s.i %% 2 = 0 AND {kind['held']} THEN %(held)s
                    ELSE ({users})[1 + (s.i * 31) %% %(n_users)s] END,
               ({users})[1 + (s.i * 31 + 1) %% %(n_users)s],
               'Bench message ' || s.i || ': ' || md5(s.i::text) || md5((-s.i)::text),
               CASE WHEN s.i %% 2 = 1 THEN true
                    WHEN {kind['kept_unread']} OR {kind['kept_important']} THEN false
                    WHEN {kind['recent']} THEN s.i %% 4 = 0
                    ELSE true END,
               s.i %% 2 = 0 AND {kind['kept_important']},
               CASE WHEN s.i %% 2 = 0 AND {kind['recent']} THEN {recent} ELSE {old} END
        FROM generate_series(%(first)s, %(last)s) AS s(i)
        ORDER BY s.i
    """
    total = 2 * count
    for first in range(1, total + 1, LOAD_CHUNK):
        last = min(first + LOAD_CHUNK - 1, total)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, {"users": user_ids, "n_users": len(user_ids),
                                 "held": held_user_id, "threads": max(1, total // 25),
                                 "first": first, "last": last})
        progress(f"loaded {last:,} of {total:,} messages")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id), count(*) FROM {_table()} "
                       "WHERE sender_id = ANY(%(ids)s)", {"ids": ids})
        first_id, last_id, loaded = cursor.fetchone()
        if loaded != total or last_id - first_id + 1 != total:
            raise RuntimeError(f"loaded {loaded} rows in ids {first_id}…{last_id}, "
                               f"not {total} consecutive ones")
        progress("VACUUM ANALYZE")
        cursor.execute(f"VACUUM (ANALYZE) {_table()}")
    prepared = Prepared(count=count, user_ids=user_ids, held_user_id=held_user_id,
                        hold_id=hold.pk, first_id=first_id, last_id=last_id,
                        kept_checksum=(0, 0), seconds=0.0)
    prepared.kept_checksum = kept_checksum(prepared)
    prepared.seconds = time.monotonic() - started
    return prepared


def kept_checksum(prepared: Prepared) -> tuple[int, int]:
    """(rows, sum of hashes) over every column and ``xmin`` of the loaded rows that are not
    expired: an update of any kept row, even to the same values, changes it."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), coalesce(sum(hashtextextended(concat_ws('|', t.id, "
            f"t.thread_id, t.sender_id, t.recipient_id, t.body, t.is_read, t.is_important, "
            f"t.created_at, t.xmin), 0)), 0) FROM {_table()} t "
            f"WHERE t.id BETWEEN %(first)s AND %(last)s AND NOT (t.id %% 2 = %(odd)s)",
            {"first": prepared.first_id, "last": prepared.last_id,
             "odd": prepared.first_id % 2})
        rows, total = cursor.fetchone()
        return rows, int(total)


def category_counts(prepared: Prepared, cutoff: datetime) -> dict[str, int]:
    """The loaded rows left, by kind, as the run's cutoff sees them."""
    expired = CLEANUPS[CLEANUP].expired
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FILTER (WHERE {expired} AND t.sender_id <> %(held)s), "
            f"count(*) FILTER (WHERE t.created_at < %(cutoff)s AND NOT t.is_read "
            f"AND NOT t.is_important), "
            f"count(*) FILTER (WHERE t.created_at < %(cutoff)s AND NOT t.is_read "
            f"AND t.is_important), "
            f"count(*) FILTER (WHERE t.created_at >= %(cutoff)s), "
            f"count(*) FILTER (WHERE {expired} AND t.sender_id = %(held)s) "
            f"FROM {_table()} t WHERE t.id BETWEEN %(first)s AND %(last)s",
            {"cutoff": cutoff, "held": prepared.held_user_id, "first": prepared.first_id,
             "last": prepared.last_id})
        return dict(zip(["expired", "kept_unread", "kept_important", "recent", "held"],
                        cursor.fetchone(), strict=True))


def verify(prepared: Prepared, run: RetentionRun, writer_ids: list[int]) -> dict[str, Any]:
    """Check the run against what was loaded. Returns the counts found and the problems
    (an empty list: exactly the expired rows went, every kept row is as loaded)."""
    expected = expected_counts(prepared.count)
    problems = []
    if run.status != RetentionRun.Status.DONE:
        problems.append(f"the run is {run.status}, not done")
    deleted = run.counts.get("deleted")
    if deleted != prepared.count:
        problems.append(f"the run deleted {deleted}, not {prepared.count}")
    left = category_counts(prepared, run.cutoff)
    for kind, rows in left.items():
        want = 0 if kind == "expired" else expected[kind]
        if rows != want:
            problems.append(f"{rows} {kind} rows left, not {want}")
    # The cleanup counts every old unread row as kept_unread, important or not.
    run_expected = {"kept_unread": expected["kept_unread"] + expected["kept_important"],
                    "held": expected["held"], "archived": 0}
    for kind, want in run_expected.items():
        if run.counts.get(kind, 0) != want:
            problems.append(f"the run counted {run.counts.get(kind)} {kind}, not {want}")
    checksum = kept_checksum(prepared)
    if checksum != prepared.kept_checksum:
        problems.append(f"kept rows changed: {checksum[0]} rows with checksum {checksum[1]}, "
                        f"loaded {prepared.kept_checksum[0]} with {prepared.kept_checksum[1]}")
    written = ChatMessage.objects.filter(pk__in=writer_ids).count()
    if written != len(writer_ids):
        problems.append(f"{len(writer_ids) - written} of the writer's messages are gone")
    return {"deleted": deleted, "left": left, "expected": expected,
            "writer_rows_kept": written, "problems": problems}


class Writer(threading.Thread):
    """Inserts one chat message every ``interval`` s, each in its own transaction on this
    thread's own connection, and records when each insert started and how long it took."""

    def __init__(self, user_ids: list[int], interval: float = WRITER_INTERVAL_S) -> None:
        super().__init__(name="bench-writer", daemon=True)
        self.user_ids = user_ids
        self.interval = interval
        self.samples: list[tuple[float, float]] = []  # (start unix time, seconds)
        self.ids: list[int] = []
        self.error: BaseException | None = None
        self._stop_event = threading.Event()

    def run(self) -> None:
        n = 0
        next_at = time.monotonic()
        try:
            while not self._stop_event.is_set():
                sender = self.user_ids[n % len(self.user_ids)]
                recipient = self.user_ids[(n + 1) % len(self.user_ids)]
                began_at, began = time.time(), time.perf_counter()
                with transaction.atomic():
                    message = ChatMessage.objects.create(
                        sender_id=sender, recipient_id=recipient,
                        body=f"Bench writer message {n}")
                self.samples.append((began_at, time.perf_counter() - began))
                self.ids.append(message.pk)
                n += 1
                # A fixed pace; after a slow insert, go on at once rather than in a burst.
                next_at = max(next_at + self.interval, time.monotonic())
                self._stop_event.wait(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by the command
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> None:
        self._stop_event.set()
        if self.ident is not None:
            self.join(timeout=30)

    def stats(self, since: float, until: float) -> dict[str, Any]:
        """Latency of the inserts that started in [since, until], in milliseconds."""
        ms = [seconds * 1000 for began, seconds in self.samples if since <= began <= until]
        return {"inserts": len(ms), "max_ms": _round(max(ms, default=None)),
                **{f"p{p}_ms": _round(percentile(ms, p)) for p in (99, 50)},
                "over_1s": sum(1 for x in ms if x > 1000)}


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class CpuMeter:
    """CPU seconds used by the worker's process tree, by the PostgreSQL backends of this
    database (``bench.runner.PostgresBackendsCpu``: sampled, since they come and go) and by
    the whole PostgreSQL server (which other users of the machine share)."""

    def __init__(self, workers: WorkerProcesses) -> None:
        self.workers = workers
        self.start_worker = process_tree_cpu_s(workers.process.pid)
        self.start_server = self._server()
        self.backends = PostgresBackendsCpu()

    def _server(self) -> float:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_backend_pid()")
            own = cursor.fetchone()[0]
        try:
            postmaster = psutil.Process(own).parent()
            # The live processes, and those that exited (backends closed, autovacuum
            # workers done): the postmaster reaps them, so their time is its children's.
            reaped = postmaster.cpu_times()
            return (process_tree_cpu_s(postmaster.pid) + reaped.children_user
                    + reaped.children_system)
        except (psutil.Error, AttributeError):
            return 0.0

    def sample(self) -> None:
        self.backends.sample()

    def result(self, wall_s: float) -> dict[str, float]:
        self.backends.sample()
        worker = process_tree_cpu_s(self.workers.process.pid) - self.start_worker
        server = self._server() - self.start_server
        return {"worker_s": round(worker, 1),
                "postgres_bench_backends_s": round(self.backends.seconds(), 1),
                "postgres_server_s": round(server, 1),
                "cores_busy": round((worker + server) / wall_s, 2) if wall_s else None}


@dataclass
class Outcome:
    prepared: Prepared
    run: RetentionRun
    deletion_s: float
    worker_s: float  # the run's own started_at → finished_at
    writer: dict[str, Any]
    writer_baseline: dict[str, Any]
    cpu: dict[str, float]
    verification: dict[str, Any]
    cleanup_s: float = 0.0


def run(count: int, *, timeout_s: float, threads: int, baseline_s: float = 2.0,
        keep: bool = False, progress: Callable[[str], None] = lambda _: None) -> Outcome:
    from retention.tasks import retention_cleanup

    delete_bench_data()
    foreign = foreign_expired_rows()
    if foreign:
        raise RuntimeError(f"{foreign} chat messages not the benchmark's are past the "
                           "retention period: the cleanup would delete them. Run the "
                           "benchmark on its own database.")
    progress(f"preparing {count:,} expired and {count:,} kept chat messages")
    prepared = prepare(count, progress)
    progress(f"prepared in {prepared.seconds:.1f} s; starting the batch worker")
    workers = start_workers("batch", BenchConfig(workloads=[], counts={}, processes=1,
                                                  threads=threads, timeout_s=timeout_s))
    writer = Writer(prepared.user_ids)
    stopped = False

    def shutdown() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            writer.stop()
            workers.stop()
            close_old_connections()

    try:
        writer.start()
        baseline_from = time.time()
        time.sleep(baseline_s)  # the writer alone: its latency without a cleanup
        before = RetentionRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        cpu = CpuMeter(workers)
        started = time.time()
        retention_cleanup.send(CLEANUP)
        progress("retention_cleanup sent; waiting for the run to finish")
        deadline = time.monotonic() + timeout_s
        run_ = None
        while time.monotonic() < deadline:
            if workers.process.poll() is not None:
                raise RuntimeError(f"the batch worker exited:\n{workers.log_tail()}")
            if writer.error is not None:
                raise RuntimeError(f"the writer failed: {writer.error!r}")
            run_ = RetentionRun.objects.filter(pk__gt=before, policy=CLEANUPS[CLEANUP]
                                               .policy_key).order_by("pk").first()
            if run_ is not None and run_.status != RetentionRun.Status.RUNNING:
                break
            cpu.sample()
            time.sleep(POLL_S)
        else:
            deleted = run_.counts.get("deleted") if run_ else 0
            raise RuntimeError(f"the run did not finish within {timeout_s:.0f} s "
                               f"({deleted} deleted)")
        ended = run_.finished_at.timestamp() if run_.finished_at else time.time()
        wall = ended - started
        cpu_used = cpu.result(wall)
        writer.stop()
        if writer.error is not None:
            raise RuntimeError(f"the writer failed: {writer.error!r}")
        outcome = Outcome(
            prepared=prepared, run=run_, deletion_s=wall,
            worker_s=(run_.finished_at - run_.started_at).total_seconds(),
            writer=writer.stats(started, ended),
            writer_baseline=writer.stats(baseline_from, started), cpu=cpu_used,
            verification=verify(prepared, run_, writer.ids))
    except BaseException:
        shutdown()
        if not keep:
            delete_bench_data()
        raise
    finally:
        shutdown()
    if not keep:
        progress("deleting the benchmark's rows")
        began = time.monotonic()
        delete_bench_data()
        outcome.cleanup_s = time.monotonic() - began
    return outcome
