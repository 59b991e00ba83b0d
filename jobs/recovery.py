"""Nothing lost: a killed worker's messages run again in seconds, a message that keeps
killing workers stops, work whose message never reached Redis (or that Redis lost) is sent
again, and a Redis that lost its data is noticed and reported.

Every worker process runs one :class:`Maintenance` thread (started by
``jobs.middleware.recovery.WorkerRecovery``), every ``BROKER_MAINTENANCE_SECONDS`` (5):

1. **Heartbeat.** Dramatiq's Redis broker knows a worker is alive only from its commands;
   a worker whose threads are all busy with long jobs sends none. The thread writes the
   process's heartbeat itself, so a worker is "dead" exactly when its process is.
2. **Recovery of dead workers' messages** (:data:`RECOVER_SCRIPT`, one Lua call). A worker
   whose heartbeat is older than ``BROKER_HEARTBEAT_TIMEOUT_SECONDS`` (15) is dead: every
   message it had fetched and not acknowledged goes back to the *head* of its queue (it
   runs next, whatever the backlog; Dramatiq's own maintenance appends it to the tail, and
   only with a 0.1 % chance per command). A message that was *running* when its worker died
   (each worker thread notes the message it starts, :class:`RunningMarks`) counts a crash;
   at ``JOB_MAX_WORKER_CRASHES`` (3) it is dead-lettered and recorded as a failed job
   instead, so a message that kills every worker that runs it stops (as Sidekiq Pro's
   super_fetch and BullMQ's stalled-job limit do). Bound: a killed worker's messages are
   back at the head of their queue within heartbeat timeout + maintenance period (20 s).
3. **Redis data loss.** Redis holds an epoch token (``<ns>:epoch``) whose value PostgreSQL
   records (``jobs.BrokerEpoch``). When Redis comes back without it, its data is gone:
   the loss is recorded, staff are emailed, health reports it, and every unfinished
   record of a stateful actor is re-driven at once.
4. **Re-driving unfinished work**, every ``REDRIVE_EVERY_SECONDS`` (30) by one process of
   the cluster: the records of stateful actors (``jobs.stateful``) not finished for
   ``REDRIVE_AFTER_SECONDS`` (60) whose message is in none of Redis's queues, delay
   queues or in-flight sets are sent again, under the same message id.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta

import dramatiq
import redis
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from dramatiq.common import dq_name, q_name

from jobs.broker import RoundTripGroup
from jobs.redis import get_redis, key

logger = logging.getLogger("jobs.recovery")

# KEYS[1]: namespace. ARGV: now (ms), heartbeat timeout (ms), max crashes, crash-count TTL
# (s), then every queue name (canonical and .DQ). Returns {requeued, q1, id1, data1, …}:
# how many messages went back to their queues, and each dead-lettered (queue, Redis message
# id, data) triple.
RECOVER_SCRIPT = """
local ns = KEYS[1]
local now = tonumber(ARGV[1])
local max_crashes = tonumber(ARGV[3])
local crash_ttl = tonumber(ARGV[4])
local heartbeats = ns .. ":__heartbeats__"
local dead = redis.call("zrangebyscore", heartbeats, 0, now - tonumber(ARGV[2]))
local requeued = 0
local result = {}
for _, worker in ipairs(dead) do
  local running_key = ns .. ":running:" .. worker
  local running = {}
  for _, id in ipairs(redis.call("hvals", running_key)) do running[id] = true end
  for i = 5, #ARGV do
    local queue = ARGV[i]
    local acks = ns .. ":__acks__." .. worker .. "." .. queue
    local ids = redis.call("smembers", acks)
    local queue_key = ns .. ":" .. queue
    local messages = queue_key .. ".msgs"
    for _, id in ipairs(ids) do
      if redis.call("hexists", messages, id) == 1 then
        local poisoned = false
        if running[id] then
          local crashes_key = ns .. ":crashes:" .. id
          local crashes = redis.call("incr", crashes_key)
          redis.call("expire", crashes_key, crash_ttl)
          poisoned = crashes >= max_crashes
        end
        if poisoned then
          local canonical = queue
          if string.sub(queue, -3) == ".DQ" then canonical = string.sub(queue, 1, -4) end
          local data = redis.call("hget", messages, id)
          redis.call("zadd", ns .. ":" .. canonical .. ".XQ", now, id)
          redis.call("hset", ns .. ":" .. canonical .. ".XQ.msgs", id, data)
          redis.call("hdel", messages, id)
          table.insert(result, queue)
          table.insert(result, id)
          table.insert(result, data)
        else
          redis.call("lpush", queue_key, id)
          requeued = requeued + 1
        end
      end
    end
    redis.call("del", acks)
  end
  redis.call("del", running_key)
  redis.call("zrem", heartbeats, worker)
end
table.insert(result, 1, requeued)
return result
"""

CRASH_COUNT_TTL_SECONDS = 7 * 24 * 3600


class WorkerCrashed(Exception):
    """A message's worker died while running it, again and again: it is not run again."""


def heartbeat_timeout_ms() -> int:
    return int(float(settings.BROKER_HEARTBEAT_TIMEOUT_SECONDS) * 1000)


def running_key(broker_id: str) -> str:
    return key("running", broker_id)


def recovery_queue_names(broker: dramatiq.Broker) -> list[str]:
    """Every queue whose in-flight messages may need recovering, delay queues included."""
    from jobs.queues import Queue

    names = {queue.value for queue in Queue} | set(broker.get_declared_queues())
    names = {q_name(name) for name in names}
    return sorted(names | {dq_name(name) for name in names})


class RunningMarks(RoundTripGroup):
    """Each worker thread notes in Redis the message it starts (``<ns>:running:<broker
    id>``, thread → Redis message id), so recovery can tell a message that was running when
    its worker died from one that was only prefetched. Threads starting at the same time
    share a round trip; the note is in Redis before the actor runs."""

    def __init__(self, client: redis.Redis, broker_id: str) -> None:
        super().__init__()
        self.client = client
        self.key = running_key(broker_id)

    def mark(self, thread_id: int, redis_message_id: str) -> None:
        self.submit((thread_id, redis_message_id))

    def _execute(self, group) -> None:
        mapping = {str(thread_id): message_id for thread_id, message_id in
                   (waiter.item for waiter in group)}
        try:
            self.client.hset(self.key, mapping=mapping)
        except Exception as error:
            for waiter in group:
                waiter.error = error


@dataclass
class RecoveryResult:
    requeued: int = 0
    dead_lettered: list[str] = field(default_factory=list)  # message ids


def recover_dead_workers(broker: dramatiq.Broker, *, client: redis.Redis | None = None,
                         now_ms: int | None = None) -> RecoveryResult:
    """Requeue, at the head of their queues, the in-flight messages of every worker whose
    heartbeat is older than the timeout; dead-letter the ones that crashed their workers
    ``JOB_MAX_WORKER_CRASHES`` times, and record those as failed jobs."""
    client = client or get_redis()
    script = client.register_script(RECOVER_SCRIPT)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    reply = script(keys=[broker.namespace], args=[
        now_ms, heartbeat_timeout_ms(), int(settings.JOB_MAX_WORKER_CRASHES),
        CRASH_COUNT_TTL_SECONDS, *recovery_queue_names(broker)])
    result = RecoveryResult(requeued=int(reply[0]))
    for index in range(1, len(reply), 3):
        queue, redis_message_id, data = reply[index:index + 3]
        result.dead_lettered.append(
            _record_crash_looping(queue.decode(), redis_message_id.decode(), data))
    if result.requeued or result.dead_lettered:
        logger.warning("Messages of dead workers recovered", extra={
            "requeued": result.requeued, "dead_lettered": len(result.dead_lettered)})
    return result


def _record_crash_looping(queue: str, redis_message_id: str, data: bytes) -> str:
    from jobs.middleware.execution import JobExecution
    from jobs.monitoring import stats
    from jobs.services import failed_job_record, failure_streak_record_failure

    crashes = int(settings.JOB_MAX_WORKER_CRASHES)
    try:
        message = dramatiq.Message.decode(data)
    except Exception:  # undecodable: recorded by its Redis id, as the consumer would
        from jobs.services import failed_job_record_undecodable

        failed_job_record_undecodable(message_id=redis_message_id, queue_name=q_name(queue),
                                      reason="Worker died running it; body undecodable.")
        return redis_message_id
    error = WorkerCrashed(f"Its worker died {crashes} times while running it (killed, out "
                          "of memory, or crashed); it is not run again.")
    logger.error("Message that kept killing its workers dead-lettered", extra={
        "actor": message.actor_name, "queue": q_name(queue),
        "message_id": message.message_id, "crashes": crashes})
    stats.recorder.record(q_name(queue), message.actor_name, stats.Event.DEAD_LETTERED)
    try:
        failed = failed_job_record(
            message_id=message.message_id, actor_name=message.actor_name,
            queue_name=q_name(queue), args=message.args, kwargs=message.kwargs,
            options=message.options, exception=error, attempts=crashes)
        failure_streak_record_failure(
            failed_job=failed,
            critical=JobExecution._is_critical(dramatiq.get_broker(), message))
    finally:
        close_old_connections()
    return message.message_id


# --- Redis data loss --------------------------------------------------------------------


def epoch_key() -> str:
    return key("epoch")


# One PostgreSQL advisory lock serialises the processes checking the epoch.
_EPOCH_LOCK = 0x6A6F6273  # "jobs"


_verified = {"token": None}  # the token this process last found PostgreSQL to know


def epoch_check(client: redis.Redis | None = None) -> bool:
    """Compare Redis's epoch token with PostgreSQL's; returns whether Redis lost its data
    (and this call recorded it). The first process to see the loss records it, emails
    staff, and re-drives every unfinished record; the others find the new epoch."""
    from jobs.models import BrokerEpoch

    client = client or get_redis()
    raw = client.get(epoch_key())
    if raw is not None and raw.decode() == _verified["token"]:
        return False  # the usual case: one GET
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_EPOCH_LOCK])
        raw = client.get(epoch_key())
        if raw is not None:
            token = raw.decode()
            # PostgreSQL new to this Redis (a fresh database, a restored backup): adopt it.
            BrokerEpoch.objects.get_or_create(token=token)
            _verified["token"] = token
            return False
        lost = BrokerEpoch.objects.exists()
        epoch = BrokerEpoch.objects.create(
            token=secrets.token_hex(16), data_lost_at=timezone.now() if lost else None)
        client.set(epoch_key(), epoch.token)
        _verified["token"] = epoch.token
    if lost:
        redriven = redrive_unfinished(cutoff_seconds=0)
        BrokerEpoch.objects.filter(pk=epoch.pk).update(redriven=redriven,
                                                       recovered_at=timezone.now())
        epoch.redriven = redriven
        _alert_data_loss(epoch, redriven)
    return lost


def _alert_data_loss(epoch, redriven: int) -> None:
    from jobs.alerts import email_staff

    logger.error("Redis lost its data; unfinished work re-driven",
                 extra={"epoch_id": epoch.pk, "redriven": redriven})
    try:
        email_staff(subject="Redis lost its data", body="\n".join([
            f"Redis came back without its data (detected {epoch.data_lost_at:%Y-%m-%d %H:%M:%S} "
            "UTC): every queued message, retry, statistic and lock it held is gone.",
            "",
            f"Re-driven from PostgreSQL: {redriven} unfinished job(s) of stateful actors.",
            "Jobs of other actors that were waiting in Redis are lost; scheduled jobs run at "
            "their next tick.",
            "",
            "Check why Redis lost its data (restart without persistence, eviction, FLUSHALL).",
        ]))
    except Exception:
        logger.exception("Could not email staff about the Redis data loss")


# --- Re-driving unfinished work -----------------------------------------------------------

REDRIVE_BATCH = 1000


def _present(client: redis.Redis, namespace: str, queue: str, message_ids: list[str]
             ) -> set[str]:
    """The message ids Redis still holds for ``queue``: waiting, in flight, delayed or
    dead-lettered (the bodies' envelopes carry the Dramatiq message id)."""
    from jobs.encryption import envelope_ids

    found: set[str] = set()
    wanted = set(message_ids)
    for suffix in ("", ".DQ", ".XQ"):
        for _, data in client.hscan_iter(f"{namespace}:{queue}{suffix}.msgs", count=1000):
            message_id, _ = envelope_ids(data)
            if message_id in wanted:
                found.add(message_id)
    return found


def redrive_unfinished(*, cutoff_seconds: float | None = None,
                       client: redis.Redis | None = None) -> int:
    """Send again the message of every unfinished record of a stateful actor that has
    none in Redis (and was last changed ``cutoff_seconds`` ago or more; default
    ``REDRIVE_AFTER_SECONDS``). Returns how many messages were sent."""
    from jobs.stateful import stateful_actors

    client = client or get_redis()
    broker = dramatiq.get_broker()
    if cutoff_seconds is None:
        cutoff_seconds = float(settings.REDRIVE_AFTER_SECONDS)
    cutoff = timezone.now() - timedelta(seconds=cutoff_seconds)
    sent = 0
    for entry in stateful_actors().values():
        records = list(entry.unfinished(cutoff, REDRIVE_BATCH))
        if not records:
            continue
        queue = entry.actor.queue_name
        present = _present(client, broker.namespace, queue, [r.message_id for r in records])
        lost = [r for r in records if r.message_id not in present]
        if not lost:
            continue
        now = timezone.now()
        broker.enqueue_many([
            (dramatiq.Message(queue_name=queue, actor_name=entry.actor_name,
                              args=tuple(r.args), kwargs=dict(r.kwargs), options={},
                              message_id=r.message_id),
             int((r.eta - now).total_seconds() * 1000) if r.eta and r.eta > now else None)
            for r in lost])
        sent += len(lost)
        logger.warning("Unfinished work re-driven", extra={
            "actor": entry.actor_name, "queue": queue, "messages": len(lost)})
    return sent


def redrive_claim(client: redis.Redis | None = None) -> bool:
    """Whether this process re-drives now: one process of the cluster per period."""
    period = max(1, int(float(settings.REDRIVE_EVERY_SECONDS)))
    return bool((client or get_redis()).set(key("redrive", "claim"), "1", nx=True,
                                            ex=period))


# --- The maintenance thread -----------------------------------------------------------------


class Maintenance(threading.Thread):
    """A worker process's heartbeat, recovery, epoch check and re-drive (module docstring)."""

    def __init__(self, broker: dramatiq.Broker, *, interval: float) -> None:
        super().__init__(name="jobsite-maintenance", daemon=True)
        self.broker = broker
        self.interval = interval
        self._stop_event = threading.Event()
        self.heartbeat_key = f"{broker.namespace}:__heartbeats__"

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        failing = False
        while not self._stop_event.is_set():
            try:
                self.step()
            except Exception as exc:  # Redis or PostgreSQL away: try again next period
                if not failing:
                    logger.warning("Worker maintenance failed (%s); retrying",
                                   type(exc).__name__)
                failing = True
            else:
                failing = False
            finally:
                close_old_connections()
            self._stop_event.wait(self.interval)

    def step(self) -> None:
        client = get_redis()
        now_ms = int(time.time() * 1000)
        pipe = client.pipeline(transaction=False)
        pipe.zadd(self.heartbeat_key, {self.broker.broker_id: now_ms})
        pipe.expire(running_key(self.broker.broker_id), 24 * 3600)
        pipe.execute()
        recover_dead_workers(self.broker, client=client, now_ms=now_ms)
        epoch_check(client)
        if redrive_claim(client):
            redrive_unfinished(client=client)
