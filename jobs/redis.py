"""Jobsite's own Redis client, and the name of every key Jobsite writes.

Every key lives under ``DRAMATIQ_NAMESPACE`` — the broker's queues (``<ns>:emails``, …),
and the platform's own keys built here — so two deployments sharing one Redis database
never share a queue, a leader lock, a run lock, a rate limit or a statistic. The
namespace is read at call time, not import time.

| key | what |
|---|---|
| ``<ns>:scheduler:leader`` | the scheduler leader lock (``jobs.scheduling.scheduler``) |
| ``<ns>:scheduler:heartbeat`` | unix time of the last scheduler heartbeat |
| ``<ns>:schedule:<id>:tick:<time>`` | a schedule's tick, claimed once (SET NX) |
| ``<ns>:schedule:<id>:running`` | a scheduled run's overlap lock |
| ``<ns>:failure-streak:<subject>`` | a critical actor's or schedule's failure streak |
| ``<ns>:ratelimit:<purpose>:<digest>`` | a sliding-window rate limit |
| ``<ns>:debounce:<actor>:<digest>`` | a pending debounced run (``jobs.debounce``) |
| ``<ns>:stats:…`` | job statistics and the worker registry (``jobs.monitoring``) |
"""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    """A process-wide client on ``REDIS_URL`` (thread-safe connection pool)."""
    return redis.Redis(**settings.REDIS_OPTIONS)


def namespace() -> str:
    """The deployment's namespace: the broker's, and every Jobsite key's prefix."""
    return settings.DRAMATIQ_NAMESPACE


def key(*parts: object) -> str:
    """``<namespace>:<part>:<part>…``: the name of one of Jobsite's own keys."""
    return ":".join((settings.DRAMATIQ_NAMESPACE, *(str(part) for part in parts)))


def scheduler_leader_key() -> str:
    return key("scheduler", "leader")


def scheduler_heartbeat_key() -> str:
    return key("scheduler", "heartbeat")


def schedule_tick_key(schedule_id: int, scheduled_for: str) -> str:
    return key("schedule", schedule_id, "tick", scheduled_for)


def schedule_run_lock_key(schedule_id: int) -> str:
    return key("schedule", schedule_id, "running")
