"""A worker and the sending side keep going when their Redis server restarts."""

import subprocess
import threading
import time

import dramatiq
import pytest
import redis
from django.conf import settings
from django.utils.module_loading import import_string

from config.redis import redis_connection_options
from jobs.queues import Queue, jobsite_actor

PORT = 16400  # this helper's range; an ephemeral port would change across the restart
PASSWORD = "resilience-test-pw"
URL = f"redis://:{PASSWORD}@127.0.0.1:{PORT}/0"


def _start_redis() -> subprocess.Popen:
    process = subprocess.Popen(
        ["redis-server", "--port", str(PORT), "--bind", "127.0.0.1", "--requirepass", PASSWORD,
         "--save", "", "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    probe = redis.Redis(host="127.0.0.1", port=PORT, password=PASSWORD)
    deadline = time.monotonic() + 10
    while True:
        try:
            probe.ping()
            return process
        except redis.ConnectionError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError(f"redis-server did not start on port {PORT}") from None
            time.sleep(0.05)
        finally:
            probe.close()


def _stop_redis(process: subprocess.Popen) -> None:
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def redis_server():
    holder = {"process": _start_redis()}
    yield holder
    if holder["process"].poll() is None:
        _stop_redis(holder["process"])


def _project_broker(url: str) -> dramatiq.Broker:
    """A broker built as settings build the project's: same class, options and middleware."""
    broker_class = import_string(settings.DRAMATIQ_BROKER["BROKER"])
    middleware = [import_string(path)() for path in settings.DRAMATIQ_MIDDLEWARE]
    return broker_class(namespace="jobsite-qfail-resilience", middleware=middleware,
                        **redis_connection_options(url))


def _wait_for(predicate, *, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_worker_keeps_processing_after_its_redis_restarts(redis_server):
    # given a worker on a password-protected Redis server of its own
    broker = _project_broker(URL)
    processed: list[int] = []
    lock = threading.Lock()

    def record(number: int) -> None:
        with lock:
            processed.append(number)

    record_actor = jobsite_actor(queue=Queue.ANALYTICS, actor_name="test_qfail_resilient_record",
                            broker=broker)(record)
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=PORT).ping()  # no password, no access
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        for number in range(5):
            record_actor.send(number)
        assert _wait_for(lambda: len(processed) == 5, timeout=15)

        # when the Redis server restarts (losing everything: no persistence)
        _stop_redis(redis_server["process"])
        redis_server["process"] = _start_redis()

        # then the sending side reconnects on its own and the worker picks up new jobs
        for number in range(5, 10):
            record_actor.send(number)
        assert _wait_for(lambda: len(processed) == 10, timeout=30), processed
        assert sorted(processed) == list(range(10))
    finally:
        worker.stop()
        broker.close()
