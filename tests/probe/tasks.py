"""Actors the recovery tests run in real worker processes. Each records what it does in
Redis (``<ns>:probe:<key>``: "start <pid> <unix time>", "done <pid> <unix time>"), so the
test process sees it across processes."""

import os
import signal
import time

from django.db import connection

from jobs.queues import Queue, jobsite_actor
from jobs.redis import get_redis, key


def probe_key(name: str) -> str:
    return key("probe", name)


def _note(name: str, what: str) -> None:
    get_redis().rpush(probe_key(name), f"{what} {os.getpid()} {time.time():.3f}")


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="probe_sleep", max_retries=3,
               min_backoff=200, max_backoff=400)
def probe_sleep(name: str, seconds: float) -> None:
    _note(name, "start")
    time.sleep(seconds)
    _note(name, "done")


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="probe_kill_worker", max_retries=3,
               min_backoff=200, max_backoff=400)
def probe_kill_worker(name: str) -> None:
    """A message that kills the worker process running it, every time (a segfault, the
    OOM killer)."""
    _note(name, "start")
    os.kill(os.getpid(), signal.SIGKILL)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="probe_query", max_retries=3,
               min_backoff=200, max_backoff=400)
def probe_query(name: str) -> None:
    """Runs one query (fails while the database is unreachable)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    _note(name, "done")
