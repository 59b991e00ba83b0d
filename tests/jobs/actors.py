"""Actors the jobs tests run on real workers. Names are unique to these tests."""

import threading

from jobs.queues import PermanentError, Queue, jobsite_actor

# Small backoffs keep retried messages in the delay queue for milliseconds, not minutes.
FAST_RETRY = {"max_retries": 1, "min_backoff": 10, "max_backoff": 20}

_attempts: dict[str, int] = {}
_lock = threading.Lock()


def attempts(key: str) -> int:
    with _lock:
        return _attempts.get(key, 0)


def _attempt(key: str) -> int:
    with _lock:
        _attempts[key] = _attempts.get(key, 0) + 1
        return _attempts[key]


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="qmetrics_test_succeeds", **FAST_RETRY)
def succeeds(n: int) -> None:
    pass


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="qmetrics_test_flaky", **FAST_RETRY)
def flaky(key: str) -> None:
    """Fails its first attempt for ``key``, succeeds on the retry."""
    if _attempt(key) == 1:
        raise RuntimeError("first attempt fails")


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="qmetrics_test_always_fails", **FAST_RETRY)
def always_fails() -> None:
    raise RuntimeError("always fails")


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="qmetrics_test_permanent", **FAST_RETRY)
def permanent() -> None:
    raise PermanentError("bad input")


@jobsite_actor(queue=Queue.EMAILS, actor_name="qmetrics_test_email_noop")
def email_noop(n: int) -> None:
    pass


started = threading.Event()
release = threading.Event()


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="qmetrics_test_blocks")
def blocks() -> None:
    """Runs until the test sets ``release`` (bounded, so a failing test cannot hang)."""
    started.set()
    release.wait(timeout=30)


backend_pids: list[int] = []


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="qmetrics_test_db_backend", max_retries=0)
def db_backend() -> None:
    """Records the PostgreSQL backend serving this worker thread's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend_pids.append(cursor.fetchone()[0])
