"""Worker database connections: kept between jobs, replaced when they die while idle."""

import dramatiq
import pytest
from django.db import connection, connections

from tests.conftest import drain
from tests.jobs import actors

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def one_thread_worker(broker):
    """A single worker thread, so consecutive jobs share one connection."""
    settings_dict = connections.settings["default"]
    max_age = settings_dict["CONN_MAX_AGE"]
    settings_dict["CONN_MAX_AGE"] = 60  # as in production; the suite's default closes
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        settings_dict["CONN_MAX_AGE"] = max_age
        broker.middleware[:] = [m for m in broker.middleware
                                if getattr(m, "worker", None) is not worker]


def test_connection_is_reused_between_jobs(broker, one_thread_worker):
    actors.backend_pids.clear()
    for _ in range(3):
        actors.db_backend.send()
    drain(broker, one_thread_worker)
    assert len(actors.backend_pids) == 3
    assert len(set(actors.backend_pids)) == 1


def test_connection_killed_between_jobs_is_replaced(broker, one_thread_worker):
    actors.backend_pids.clear()
    actors.db_backend.send()
    drain(broker, one_thread_worker)
    [first] = actors.backend_pids
    with connection.cursor() as cursor:  # as a PostgreSQL restart or idle timeout would
        cursor.execute("SELECT pg_terminate_backend(%s)", [first])
        assert cursor.fetchone()[0] is True

    actors.db_backend.send()
    drain(broker, one_thread_worker)

    # The second job ran at its first attempt, on a new connection (max_retries=0: a
    # failed attempt would have left no pid).
    assert len(actors.backend_pids) == 2
    assert actors.backend_pids[1] != first
