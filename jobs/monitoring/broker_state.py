"""What the Dramatiq broker holds in Redis: queue depths and the live workers.

dramatiq/brokers/redis/dispatch.lua keeps, for queue Q in namespace NS:

- ``NS:Q``: list of message ids ready to fetch
- ``NS:Q.msgs``: hash id -> message, for ready AND fetched-but-unacked messages
- ``NS:Q.DQ`` / ``NS:Q.DQ.msgs``: the same pair for delayed messages (retries, ``delay=``);
  a worker fetches them early and holds them until their eta
- ``NS:Q.XQ``: sorted set of dead-lettered ids (score: when), ``NS:Q.XQ.msgs`` their data
- ``NS:__heartbeats__``: sorted set broker id -> last command (ms); workers poll about
  every second, so a fresh entry means a live worker -- or a process that just enqueued
  something, hence the worker registry below (``<ns>:stats:workers``)
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dramatiq
import redis

from jobs.redis import get_redis, key
from jobs.redis import namespace as current_namespace

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueDepth:
    queue_name: str
    ready: int  # waiting to be fetched
    in_flight: int  # fetched by a worker, not yet acknowledged
    delayed: int  # retries and delayed sends waiting for their time
    dead: int  # dead-lettered (kept by the broker for its dead-message TTL)
    oldest_age_seconds: float | None  # of the oldest ready message; None when empty
    # In flight on workers whose heartbeat is older than the broker's heartbeat timeout:
    # dead, their messages not recovered yet (jobs.recovery does it within seconds).
    orphaned: int = 0


def broker_queue_names() -> list[str]:
    """Jobsite's queues plus any other queue an actor declared (delay queues excluded)."""
    from jobs.queues import Queue

    names = {q.value for q in Queue}
    try:
        names |= {q for q in dramatiq.get_broker().get_declared_queues() if not q.endswith(".DQ")}
    except Exception:  # no broker configured: report the configured queues
        logger.debug("No Dramatiq broker to list declared queues", exc_info=True)
    return sorted(names)


def queue_depths(
    client: redis.Redis | None = None, *, queues: Sequence[str] | None = None,
    namespace: str | None = None, now: float | None = None,
) -> dict[str, QueueDepth]:
    """Read every queue's depth from the broker's keys (two pipelined round trips)."""
    client = client or get_redis()
    namespace = namespace or current_namespace()
    queues = list(queues) if queues is not None else broker_queue_names()
    now = time.time() if now is None else now
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        base = f"{namespace}:{queue}"
        pipe.llen(base)
        pipe.hlen(f"{base}.msgs")
        pipe.hlen(f"{base}.DQ.msgs")
        pipe.zcard(f"{base}.XQ")
        pipe.lindex(base, 0)
    pipe.zrangebyscore(f"{namespace}:__heartbeats__", 0, now * 1000 - _heartbeat_timeout_ms())
    replies = pipe.execute()
    dead_workers = [w.decode() for w in replies.pop()]
    heads: dict[str, bytes] = {}
    counts: dict[str, tuple[int, int, int, int]] = {}
    for index, queue in enumerate(queues):
        ready, held, delayed, dead, head = replies[index * 5 : index * 5 + 5]
        counts[queue] = (ready, held, delayed, dead)
        if head is not None:
            heads[queue] = head
    oldest: dict[str, float] = {}
    orphaned: dict[str, int] = {}
    if heads or dead_workers:
        pipe = client.pipeline(transaction=False)
        for queue, head in heads.items():
            pipe.hget(f"{namespace}:{queue}.msgs", head)
        for worker in dead_workers:
            for queue in queues:
                pipe.scard(f"{namespace}:__acks__.{worker}.{queue}")
                pipe.scard(f"{namespace}:__acks__.{worker}.{queue}.DQ")
        replies = pipe.execute()
        for queue, data in zip(heads, replies[:len(heads)], strict=True):
            due_ms = _message_due_ms(data)
            if due_ms is not None:
                oldest[queue] = max(0.0, now - due_ms / 1000)
        rest = iter(replies[len(heads):])
        for _worker in dead_workers:
            for queue in queues:
                orphaned[queue] = orphaned.get(queue, 0) + next(rest) + next(rest)
    return {
        queue: QueueDepth(
            queue_name=queue,
            ready=ready,
            in_flight=max(0, held - ready),
            delayed=delayed,
            dead=dead,
            oldest_age_seconds=oldest.get(queue),
            orphaned=orphaned.get(queue, 0),
        )
        for queue, (ready, held, delayed, dead) in counts.items()
    }


def _heartbeat_timeout_ms() -> int:
    try:
        return int(dramatiq.get_broker().heartbeat_timeout)
    except Exception:  # not a Redis broker: Dramatiq's default
        return 60_000


def _message_due_ms(data: bytes | None) -> float | None:
    """When a stored message became ready: its eta if it was delayed, else its enqueue time."""
    if not data:
        return None
    try:
        # The configured encoder: bodies may be encrypted (jobs.encryption).
        message = dramatiq.Message.decode(data)
        return float(message.options.get("eta") or message.message_timestamp)
    except Exception:  # undecodable: the broker dead-letters it; no age to report
        logger.debug("Queue head could not be decoded", exc_info=True)
        return None


def workers_key() -> str:
    """Hash broker id -> JSON {queues, pid, started} of every worker that booted."""
    return key("stats", "workers")


def worker_register(*, broker_id: str, queues: Iterable[str], client: redis.Redis | None = None
                    ) -> None:
    """Note that ``broker_id`` belongs to a worker (not a process that only enqueues)."""
    info = {"queues": sorted(queues), "pid": os.getpid(), "started": int(time.time())}
    (client or get_redis()).hset(workers_key(), broker_id, json.dumps(info))


def worker_unregister(*, broker_id: str, client: redis.Redis | None = None) -> None:
    (client or get_redis()).hdel(workers_key(), broker_id)


def live_workers(
    client: redis.Redis | None = None, *, namespace: str | None = None,
    now: float | None = None,
) -> list[dict]:
    """Workers whose broker heartbeat is within the broker's heartbeat timeout.

    Every process that talks to the broker leaves a heartbeat, web processes that only
    enqueue too; only the ids workers registered at boot count. Registrations of workers
    whose heartbeat is long gone (killed without shutdown) are pruned here.
    """
    client = client or get_redis()
    namespace = namespace or current_namespace()
    timeout_ms = _heartbeat_timeout_ms()
    now_ms = (time.time() if now is None else now) * 1000
    registered = client.hgetall(workers_key())
    if not registered:
        return []
    ids = list(registered)
    pipe = client.pipeline(transaction=False)
    for broker_id in ids:
        pipe.zscore(f"{namespace}:__heartbeats__", broker_id)
    live, dead = [], []
    for broker_id, beat in zip(ids, pipe.execute(), strict=True):
        info = json.loads(registered[broker_id])
        if beat is not None and beat >= now_ms - timeout_ms:
            live.append(info)
        elif beat is not None:
            if beat < now_ms - 24 * 3600 * 1000:
                dead.append(broker_id)  # killed without shutdown long ago
        elif info.get("started", 0) * 1000 < now_ms - timeout_ms:
            # Never a heartbeat since well before the timeout. (None at all is normal for
            # a worker that booted a moment ago: it is not pruned then.)
            dead.append(broker_id)
    if dead:
        client.hdel(workers_key(), *dead)
    return live


def live_worker_count(
    client: redis.Redis | None = None, *, namespace: str | None = None,
    now: float | None = None,
) -> int:
    return len(live_workers(client, namespace=namespace, now=now))
