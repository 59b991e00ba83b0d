"""Job statistics the jobs app keeps for every job.

What is kept, per (queue, actor) — names only, never arguments, so no personal data:
counts of ``enqueued``, ``succeeded``, ``failed`` (final: no retry left), ``retried``,
``dead_lettered`` and ``skipped`` messages, and two distributions in fixed buckets
(:data:`BUCKETS_MS`): run time (start to end of the actor call) and wait time (from when the
message became due — enqueue, or its ``eta`` when delayed — to the start of its run).

Where it is kept:

- Redis, written by :class:`StatsRecorder` (one per process, fed by
  ``jobs.middleware.stats.JobStatsMiddleware``). Recording a message only bumps counters in memory;
  a background thread flushes them every ``JOB_STATS_FLUSH_SECONDS`` in one MULTI/EXEC
  pipeline of HINCRBYs into a hash per minute (``<namespace>:stats:minute:<unix minute>``,
  expiring after ``JOB_STATS_REDIS_RETENTION_HOURS``) and into a cumulative totals hash. The
  email benchmark pushes 20,000+ jobs a minute through this path, so a message costs
  a few dict increments, not a Redis round trip. A process killed with SIGKILL loses at most
  its last flush interval of counts.
- PostgreSQL, :class:`jobs.models.JobStatHour`: the ``job_stats_rollup`` actor folds settled
  minutes into one row per (hour, queue, actor). Each row lists the minutes it contains,
  which makes the rollup idempotent and lets readers combine rows with the minutes still
  only in Redis without counting anything twice.

:func:`performance_summary` reads both. What the broker itself holds (queue depths, live
workers) is read by ``jobs.monitoring.broker_state``.
"""

from __future__ import annotations

import atexit
import bisect
import logging
import math
import os
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING

import redis
from django.conf import settings
from django.db import transaction

from jobs.monitoring.buckets import BUCKET_COUNT, BUCKETS_MS
from jobs.redis import get_redis, key

if TYPE_CHECKING:  # the models load after this module (the broker's middleware imports it)
    from jobs.models import JobStatHour

logger = logging.getLogger(__name__)

class Event(StrEnum):
    ENQUEUED = "enqueued"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # final: the message will not run again
    RETRIED = "retried"  # the run raised and the message was re-enqueued with a backoff
    DEAD_LETTERED = "dead_lettered"
    SKIPPED = "skipped"  # a middleware skipped it (e.g. AgeLimit)


EVENTS: tuple[str, ...] = tuple(event.value for event in Event)

# Minutes younger than this may still receive counts from a process's next flush.
SETTLE_MINUTES = 2
# A process that has not flushed for this long no longer counts as running anything.
PROCESS_STALE_SECONDS = 30


# Keys, under the deployment's namespace (jobs.redis): <ns>:stats:...
def minutes_index_key() -> str:
    """Sorted set of the unix minutes that have data."""
    return key("stats", "minutes")


def totals_key() -> str:
    """Cumulative counts since the Redis database was created."""
    return key("stats", "totals")


def processes_key() -> str:
    """Sorted set: process id -> its last flush (unix seconds)."""
    return key("stats", "processes")


def minute_key(minute: int) -> str:
    return key("stats", "minute", minute)


def process_key(process_id: str) -> str:
    return key("stats", "process", process_id)


# --- Counts: one (queue, actor) -----------------------------------------------------


@dataclass
class StatCounts:
    """Counts and distributions of one (queue, actor) over some period."""

    enqueued: int = 0
    succeeded: int = 0
    failed: int = 0
    retried: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    run_ms_sum: int = 0
    wait_ms_sum: int = 0
    run_buckets: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)
    wait_buckets: list[int] = field(default_factory=lambda: [0] * BUCKET_COUNT)

    @property
    def finished(self) -> int:
        """Jobs that reached a final outcome: succeeded or failed for good."""
        return self.succeeded + self.failed

    @property
    def runs(self) -> int:
        """Actor calls, retried attempts included."""
        return sum(self.run_buckets)

    def add(self, other: StatCounts) -> None:
        for name in EVENTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.run_ms_sum += other.run_ms_sum
        self.wait_ms_sum += other.wait_ms_sum
        self.run_buckets = _add_lists(self.run_buckets, other.run_buckets)
        self.wait_buckets = _add_lists(self.wait_buckets, other.wait_buckets)

    def apply_field(self, name: str, value: int) -> None:
        """Add ``value`` to the Redis hash field ``name`` (``run_b3``, ``failed``, ...)."""
        if name in EVENTS:
            setattr(self, name, getattr(self, name) + value)
        elif name == "run_sum":
            self.run_ms_sum += value
        elif name == "wait_sum":
            self.wait_ms_sum += value
        elif name.startswith("run_b"):
            self.run_buckets[_bucket_field_index(name)] += value
        elif name.startswith("wait_b"):
            self.wait_buckets[_bucket_field_index(name)] += value


def _bucket_field_index(name: str) -> int:
    return min(int(name.rsplit("b", 1)[1]), BUCKET_COUNT - 1)


def _add_lists(a: Sequence[int], b: Sequence[int]) -> list[int]:
    size = max(len(a), len(b), BUCKET_COUNT)
    return [
        (a[i] if i < len(a) else 0) + (b[i] if i < len(b) else 0) for i in range(size)
    ][:BUCKET_COUNT]


def histogram_percentile(buckets: Sequence[int], quantile: float) -> float | None:
    """Estimate a quantile (0..1) in ms from bucket counts, as Prometheus does.

    The value is interpolated linearly inside the bucket holding the rank; a rank in the
    overflow bucket gives the last finite bound. ``None`` when there is no observation.
    """
    total = sum(buckets)
    if not total:
        return None
    rank = quantile * total
    cumulative = 0
    for index, count in enumerate(buckets):
        if count and cumulative + count >= rank:
            if index >= len(BUCKETS_MS):
                return float(BUCKETS_MS[-1])
            lower = 0 if index == 0 else BUCKETS_MS[index - 1]
            upper = BUCKETS_MS[index]
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return float(BUCKETS_MS[-1])


StatKey = tuple[str, str]  # (queue, actor)


def parse_hash(raw: dict[bytes, bytes]) -> dict[StatKey, StatCounts]:
    """Decode a minute or totals hash (fields ``queue|actor|name``)."""
    result: dict[StatKey, StatCounts] = defaultdict(StatCounts)
    for raw_field, raw_value in raw.items():
        text = raw_field.decode()
        queue, _, rest = text.partition("|")
        actor, _, name = rest.rpartition("|")
        result[(queue, actor)].apply_field(name, int(raw_value))
    return dict(result)


# --- Recording ------------------------------------------------------------------------


# A buffered (minute, queue, actor) is one flat list of counters, in this field order.
SLOT_FIELDS: tuple[str, ...] = (
    *EVENTS, "run_sum", "wait_sum",
    *(f"run_b{i}" for i in range(BUCKET_COUNT)), *(f"wait_b{i}" for i in range(BUCKET_COUNT)),
)
SLOT_SIZE = len(SLOT_FIELDS)
_RUN_SUM = len(EVENTS)
_WAIT_SUM = _RUN_SUM + 1
_RUN_B = _WAIT_SUM + 1
_WAIT_B = _RUN_B + BUCKET_COUNT
_EVENT_INDEX: dict[str, int] = {}
for _index, _event in enumerate(Event):
    _EVENT_INDEX[_event.value] = _index
    _EVENT_INDEX[_event] = _index


class StatsRecorder:
    """Buffers one process's job statistics in memory and flushes them to Redis.

    Thread-safe. The flush thread starts on first use and again after a fork, so a
    gunicorn or dramatiq child never shares its parent's buffer.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[int, str, str], list[int]] = {}
        self._in_progress: Counter[tuple[str, str]] = Counter()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._wakeup = threading.Event()
        self.process_id = uuid.uuid4().hex[:12]
        # Set by the middleware in worker processes: they publish what they are running
        # (and that they are alive) on every flush, even when idle.
        self.is_worker = False

    # Hot path: called for every message event. A few list increments under a lock.
    def record(
        self, queue: str, actor: str, event: str, *, run_ms: float | None = None,
        wait_ms: float | None = None, now: float | None = None, running: int = 0,
    ) -> None:
        """Count ``event`` for (queue, actor); ``running`` adjusts the in-progress count."""
        key = (int((time.time() if now is None else now) // 60), queue, actor)
        with self._lock:
            slot = self._pending.get(key)
            if slot is None:
                slot = self._pending[key] = [0] * SLOT_SIZE
            slot[_EVENT_INDEX[event]] += 1
            if run_ms is not None:
                slot[_RUN_B + bisect.bisect_left(BUCKETS_MS, run_ms)] += 1
                slot[_RUN_SUM] += int(run_ms)
            if wait_ms is not None:
                if wait_ms < 0:
                    wait_ms = 0
                slot[_WAIT_B + bisect.bisect_left(BUCKETS_MS, wait_ms)] += 1
                slot[_WAIT_SUM] += int(wait_ms)
            if running:
                self._in_progress[(queue, actor)] += running
        if self._pid != os.getpid():
            self._start_thread()

    def started(self, queue: str, actor: str) -> None:
        with self._lock:
            self._in_progress[(queue, actor)] += 1

    def _start_thread(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            if self._pid is not None:
                # Forked: the parent's buffer is the parent's to flush.
                self._pending = {}
                self._in_progress = Counter()
                self.process_id = uuid.uuid4().hex[:12]
            self._pid = os.getpid()
            self._thread = threading.Thread(
                target=self._run, name="jobsite-stats-flush", daemon=True
            )
            self._thread.start()

    def ensure_running(self) -> None:
        if self._pid != os.getpid():
            self._start_thread()

    def _run(self) -> None:
        failing = False
        while True:
            self._wakeup.wait(_flush_interval())
            self._wakeup.clear()
            try:
                self.flush()
            except Exception as exc:  # the thread must survive anything; the next retries
                if not failing:  # once per outage, not once a second
                    logger.warning("Job statistics flush failed (%s); counts are kept in "
                                   "memory and retried", type(exc).__name__)
                failing = True
            else:
                if failing:
                    logger.info("Job statistics flush works again")
                failing = False

    def flush(self, client: redis.Redis | None = None) -> int:
        """Write buffered counts to Redis in one transaction. Returns fields written.

        On a Redis error the counts go back into the buffer for the next flush.
        """
        with self._lock:
            pending, self._pending = self._pending, {}
            in_progress = {f"{q}|{a}": n for (q, a), n in self._in_progress.items() if n > 0}
        if not pending and not in_progress and not self.is_worker:
            return 0
        client = client or get_redis()
        retention = _retention_seconds()
        now = time.time()
        pipe = client.pipeline(transaction=True)
        totals = totals_key()
        minutes: set[int] = set()
        written = 0
        for (minute, queue, actor), slot in pending.items():
            key = minute_key(minute)
            prefix = f"{queue}|{actor}|"
            for index, count in enumerate(slot):
                if count:
                    name = prefix + SLOT_FIELDS[index]
                    pipe.hincrby(key, name, count)
                    pipe.hincrby(totals, name, count)
                    written += 1
            minutes.add(minute)
        for minute in minutes:
            pipe.expire(minute_key(minute), retention)
        if minutes:
            pipe.zadd(minutes_index_key(), {str(m): m for m in minutes})
        own_key = process_key(self.process_id)
        pipe.delete(own_key)
        if in_progress:
            pipe.hset(own_key, mapping=in_progress)
            pipe.expire(own_key, PROCESS_STALE_SECONDS)
        pipe.zadd(processes_key(), {self.process_id: now})
        # Every process start adds an id; forget those silent for an hour.
        pipe.zremrangebyscore(processes_key(), "-inf", now - 3600)
        try:
            pipe.execute()
        except redis.RedisError:
            oldest_kept = int((now - retention) // 60)
            with self._lock:
                for key, slot in pending.items():
                    if key[0] >= oldest_kept:
                        mine = self._pending.setdefault(key, [0] * SLOT_SIZE)
                        for index, count in enumerate(slot):
                            mine[index] += count
            raise
        return written

    def forget_process(self, client: redis.Redis | None = None) -> None:
        """Remove this process from the live set (worker shutdown)."""
        client = client or get_redis()
        client.pipeline().delete(process_key(self.process_id)).zrem(
            processes_key(), self.process_id
        ).execute()


def _flush_interval() -> float:
    return float(getattr(settings, "JOB_STATS_FLUSH_SECONDS", 1.0))


def _retention_seconds() -> int:
    return int(float(getattr(settings, "JOB_STATS_REDIS_RETENTION_HOURS", 6)) * 3600)


recorder = StatsRecorder()


@atexit.register
def _flush_at_exit() -> None:
    if recorder._pid == os.getpid():
        try:
            recorder.flush()
        except Exception:  # interpreter shutdown: nothing left to report to
            logger.warning("Job statistics could not be flushed at exit")


# --- Reading Redis ---------------------------------------------------------------------


def read_minutes(
    minutes: Iterable[int], client: redis.Redis | None = None
) -> dict[int, dict[StatKey, StatCounts]]:
    """The stats of each given unix minute still in Redis (one pipelined round trip)."""
    minutes = list(minutes)
    if not minutes:
        return {}
    client = client or get_redis()
    pipe = client.pipeline(transaction=False)
    for minute in minutes:
        pipe.hgetall(minute_key(minute))
    return {m: parse_hash(raw) for m, raw in zip(minutes, pipe.execute(), strict=True) if raw}


def recent_minutes(
    *, count: int, now: float | None = None, client: redis.Redis | None = None
) -> list[tuple[int, dict[StatKey, StatCounts]]]:
    """The last ``count`` minutes, oldest first, the current one included; empty minutes too."""
    current = int((time.time() if now is None else now) // 60)
    minutes = list(range(current - count + 1, current + 1))
    data = read_minutes(minutes, client)
    return [(m, data.get(m, {})) for m in minutes]


def totals(client: redis.Redis | None = None) -> dict[StatKey, StatCounts]:
    """Cumulative stats per (queue, actor)."""
    return parse_hash((client or get_redis()).hgetall(totals_key()))


def in_progress(client: redis.Redis | None = None) -> dict[StatKey, int]:
    """Messages running now per (queue, actor), summed over live processes."""
    client = client or get_redis()
    live = client.zrangebyscore(processes_key(), time.time() - PROCESS_STALE_SECONDS, "+inf")
    result: Counter[StatKey] = Counter()
    if not live:
        return {}
    pipe = client.pipeline(transaction=False)
    for process_id in live:
        pipe.hgetall(process_key(process_id.decode()))
    for raw in pipe.execute():
        for raw_field, raw_value in raw.items():
            queue, _, actor = raw_field.decode().partition("|")
            result[(queue, actor)] += int(raw_value)
    return dict(result)


# --- Rollup into PostgreSQL ------------------------------------------------------------


_COUNT_FIELDS = (*EVENTS, "run_ms_sum", "wait_ms_sum", "run_buckets", "wait_buckets")


def hour_counts(row: JobStatHour) -> StatCounts:
    """The counts an hourly row holds."""
    counts = StatCounts(**{name: getattr(row, name) for name in _COUNT_FIELDS})
    counts.run_buckets, counts.wait_buckets = list(row.run_buckets), list(row.wait_buckets)
    return counts


def hour_set_counts(row: JobStatHour, counts: StatCounts) -> None:
    for name in _COUNT_FIELDS:
        setattr(row, name, getattr(counts, name))


def minute_hour(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60 - (minute * 60) % 3600, tz=UTC)


def job_stats_rollup(*, now: float | None = None) -> int:
    """Fold every settled minute still in Redis into ``JobStatHour`` rows.

    Idempotent: a row records the minutes it holds and a minute is never added twice, so a
    rerun, or two runs at once (rows are locked), changes nothing. Minutes past the Redis
    retention are dropped from the index afterwards.

    Returns:
      The number of (hour, queue, actor) rows that changed.
    """
    from jobs.models import JobStatHour

    client = get_redis()
    now = time.time() if now is None else now
    settled = int(now // 60) - SETTLE_MINUTES
    minutes = [int(m) for m in client.zrangebyscore(minutes_index_key(), "-inf", settled)]
    groups: dict[tuple[datetime, str, str], list[tuple[int, StatCounts]]] = defaultdict(list)
    for minute, per_key in read_minutes(minutes, client).items():
        for (queue, actor), counts in per_key.items():
            groups[(minute_hour(minute), queue, actor)].append((minute, counts))

    changed = 0
    for (hour, queue, actor), parts in sorted(groups.items()):
        with transaction.atomic():
            row, _ = JobStatHour.objects.select_for_update().get_or_create(
                hour=hour, queue_name=queue, actor_name=actor
            )
            rolled = set(row.minutes)
            new_parts = [(m, c) for m, c in parts if m not in rolled]
            if not new_parts:
                continue
            total = hour_counts(row)
            for minute, counts in new_parts:
                total.add(counts)
                rolled.add(minute)
            hour_set_counts(row, total)
            row.minutes = sorted(rolled)
            row.save()
            changed += 1
    client.zremrangebyscore(
        minutes_index_key(), "-inf", int((now - _retention_seconds()) // 60)
    )
    return changed


# --- Performance summary ---------------------------------------------------------------


@dataclass(frozen=True)
class ActorPerformance:
    actor_name: str
    jobs_run: int
    failed: int
    p50_run_ms: float | None
    p95_run_ms: float | None
    mean_run_ms: float | None


@dataclass(frozen=True)
class QueuePerformance:
    """One queue over a period. Times are milliseconds (``None`` when nothing ran).

    ``jobs_run`` counts jobs that finished (succeeded + failed for good); ``runs`` counts
    actor calls, retried attempts included. ``failure_rate`` is failed / jobs_run.
    """

    queue_name: str
    jobs_run: int
    succeeded: int
    failed: int
    retried: int
    dead_lettered: int
    skipped: int
    enqueued: int
    runs: int
    failure_rate: float
    p50_run_ms: float | None
    p95_run_ms: float | None
    p50_wait_ms: float | None
    p95_wait_ms: float | None
    slowest_actors: list[ActorPerformance]


SLOWEST_ACTORS = 5


def collect_counts(*, start: datetime, end: datetime) -> dict[StatKey, StatCounts]:
    """Stats per (queue, actor) from ``start`` (rounded down to the hour) to ``end``.

    Rolled-up hours come from PostgreSQL, the rest from Redis minutes; a minute is taken
    from Redis only when its hour row does not already hold it.
    """
    from jobs.models import JobStatHour

    start = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    end = end.astimezone(UTC)
    result: dict[StatKey, StatCounts] = defaultdict(StatCounts)
    rolled: dict[tuple[datetime, str, str], set[int]] = {}
    for row in JobStatHour.objects.filter(hour__gte=start, hour__lt=end):
        result[(row.queue_name, row.actor_name)].add(hour_counts(row))
        rolled[(row.hour, row.queue_name, row.actor_name)] = set(row.minutes)

    client = get_redis()
    # Minutes that begin before ``end`` (exclusive): the one ``end`` falls in counts,
    # even when ``end`` is a fraction of a second past its start.
    first, last = int(start.timestamp() // 60), math.ceil(end.timestamp() / 60) - 1
    minutes = [int(m) for m in client.zrangebyscore(minutes_index_key(), first, last)]
    for minute, per_key in read_minutes(minutes, client).items():
        hour = minute_hour(minute)
        for (queue, actor), counts in per_key.items():
            if minute not in rolled.get((hour, queue, actor), ()):
                result[(queue, actor)].add(counts)
    return dict(result)


def performance_summary(*, start: datetime, end: datetime) -> dict[str, QueuePerformance]:
    """Per queue: jobs run, succeeded, failed, failure rate, p50/p95 run and wait time (ms),
    and the slowest actors (by p95 run time), for ``start`` <= t < ``end``.

    ``start`` is rounded down to the hour (rolled-up history has hour resolution).
    Percentiles are interpolated inside the :data:`BUCKETS_MS` buckets.
    """
    per_queue: dict[str, list[tuple[str, StatCounts]]] = defaultdict(list)
    for (queue, actor), counts in collect_counts(start=start, end=end).items():
        per_queue[queue].append((actor, counts))

    summary: dict[str, QueuePerformance] = {}
    for queue, actors in sorted(per_queue.items()):
        total = StatCounts()
        for _, counts in actors:
            total.add(counts)
        slowest = sorted(
            (
                ActorPerformance(
                    actor_name=actor,
                    jobs_run=counts.finished,
                    failed=counts.failed,
                    p50_run_ms=histogram_percentile(counts.run_buckets, 0.5),
                    p95_run_ms=histogram_percentile(counts.run_buckets, 0.95),
                    mean_run_ms=counts.run_ms_sum / counts.runs if counts.runs else None,
                )
                for actor, counts in actors
                if counts.runs
            ),
            key=lambda a: (-(a.p95_run_ms or 0), -(a.mean_run_ms or 0), a.actor_name),
        )[:SLOWEST_ACTORS]
        summary[queue] = QueuePerformance(
            queue_name=queue,
            jobs_run=total.finished,
            succeeded=total.succeeded,
            failed=total.failed,
            retried=total.retried,
            dead_lettered=total.dead_lettered,
            skipped=total.skipped,
            enqueued=total.enqueued,
            runs=total.runs,
            failure_rate=total.failed / total.finished if total.finished else 0.0,
            p50_run_ms=histogram_percentile(total.run_buckets, 0.5),
            p95_run_ms=histogram_percentile(total.run_buckets, 0.95),
            p50_wait_ms=histogram_percentile(total.wait_buckets, 0.5),
            p95_wait_ms=histogram_percentile(total.wait_buckets, 0.95),
            slowest_actors=slowest,
        )
    return summary
