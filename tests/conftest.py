"""Fixtures shared by the whole suite: real Redis broker, real Dramatiq workers."""

import io
import logging
import time

import dramatiq
import pytest
from django.test import Client

from jobs.redis import get_redis


@pytest.fixture
def redis_client():
    """The suite's Redis database, emptied before and after the test."""
    client = get_redis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def broker(redis_client):
    """The project's real Redis broker, with every queue empty."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def worker(broker):
    """A real Dramatiq worker consuming every queue, in this process's threads.

    Tests that use it need ``transactional_db`` so the worker sees committed rows.
    """
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop()
    # Dramatiq never takes back the middleware a Worker adds to its broker: a stopped worker
    # would start consumers for queues declared later (e.g. by a test importing a tasks
    # module) and fetch their messages without ever running them.
    broker.middleware[:] = [
        m for m in broker.middleware if getattr(m, "worker", None) is not worker
    ]


def drain(broker, worker, *, timeout_ms: int = 20_000) -> None:
    """Wait until every declared queue is empty and the worker is idle.

    Repeats until one pass finds nothing left, so work that a job enqueues on a queue
    already joined (a digest fanning out emails) is waited for too.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        queues = sorted(broker.get_declared_queues())
        for queue_name in queues:
            broker.join(queue_name, timeout=timeout_ms)
        worker.join()
        if all(broker.do_qsize(queue_name) == 0 for queue_name in queues):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"queues not drained within {timeout_ms} ms")


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait for something a worker's consumer thread does after ``drain`` returns.

    ``drain`` covers the work queue; a message for an unknown actor is rejected by the
    consumer thread itself, which ``Worker.join`` does not wait for.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def staff_client(db, django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("staff@example.test", "pw-staff-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def stderr_output():
    """What the project's configured stderr handler (settings.LOGGING) writes: the log
    lines as they leave the process, after the handler's scrubbing filters."""
    [handler] = [h for h in logging.getLogger().handlers if h.name == "stderr"]

    class Written(io.StringIO):
        # The handler writes INFO lines in batches: what it wrote once it has flushed.
        def getvalue(self) -> str:
            handler.flush()
            return super().getvalue()

    buffer = Written()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)
