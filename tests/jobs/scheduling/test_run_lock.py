"""One run of a schedule at a time: a real worker skips a message whose schedule's previous
run still executes, and the lock is released on success, failure and time limit."""

import threading
import time

import pytest

from jobs.models import Schedule, ScheduleOutcome
from jobs.queues import SECOND, PermanentError, Queue, jobsite_actor
from jobs.redis import key
from jobs.redis import schedule_run_lock_key as run_lock_key
from jobs.scheduling.services import schedule_enqueue
from tests.conftest import drain

started = threading.Event()
release = threading.Event()
runs: list[str] = []


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="test_sched_slow", max_retries=0,
               time_limit=30 * SECOND)
def slow_job() -> None:
    runs.append("slow")
    started.set()
    release.wait(20)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="test_sched_broken", max_retries=0)
def broken_job() -> None:
    runs.append("broken")
    raise PermanentError("bad input")


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="test_sched_overrun", max_retries=0,
               time_limit=1 * SECOND)
def overrunning_job() -> None:
    runs.append("overrun")
    for _ in range(100):  # interruptible: TimeLimit raises between bytecodes
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def reset_events():
    started.clear()
    release.clear()
    runs.clear()
    yield
    release.set()


def wait_for(condition, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail("timed out")


def outcome(schedule: Schedule) -> str:
    schedule.refresh_from_db()
    return schedule.last_outcome


@pytest.mark.django_db(transaction=True)
def test_overlapping_run_is_skipped_and_recorded(broker, worker, redis_client):
    schedule = Schedule.objects.create(name="slow", actor_name="test_sched_slow",
                                       cron="* * * * *")
    schedule_enqueue(schedule=schedule)
    assert started.wait(10)
    assert outcome(schedule) == ScheduleOutcome.RUNNING
    assert redis_client.exists(run_lock_key(schedule.pk))

    second = schedule_enqueue(schedule=schedule)
    wait_for(lambda: outcome(schedule) == ScheduleOutcome.SKIPPED_OVERLAP)

    assert runs == ["slow"]
    assert schedule.last_message_id == second
    release.set()
    drain(broker, worker)
    assert not redis_client.exists(run_lock_key(schedule.pk))

    started.clear()
    release.set()
    schedule_enqueue(schedule=schedule)  # the previous run finished: this one runs
    drain(broker, worker)
    assert runs == ["slow", "slow"]
    assert outcome(schedule) == ScheduleOutcome.SUCCEEDED


@pytest.mark.django_db(transaction=True)
def test_lock_is_released_when_the_run_fails(broker, worker, redis_client):
    schedule = Schedule.objects.create(name="broken", actor_name="test_sched_broken",
                                       cron="* * * * *")

    schedule_enqueue(schedule=schedule)
    drain(broker, worker)
    assert outcome(schedule) == ScheduleOutcome.FAILED
    assert schedule.last_error == "PermanentError"
    assert not redis_client.exists(run_lock_key(schedule.pk))

    schedule_enqueue(schedule=schedule)
    drain(broker, worker)
    assert runs == ["broken", "broken"]


@pytest.fixture
def time_limits(broker):
    """Start TimeLimit's watchdog thread, as ``dramatiq``'s CLI does at process boot (the
    in-process ``worker`` fixture never emits ``process_boot``)."""
    from dramatiq.middleware import TimeLimit

    middleware = next(m for m in broker.middleware if isinstance(m, TimeLimit))
    if not middleware.manager.is_alive():
        middleware.manager.start()
    return middleware


@pytest.mark.django_db(transaction=True)
def test_lock_is_released_when_the_run_hits_its_time_limit(broker, worker, redis_client,
                                                           time_limits):
    schedule = Schedule.objects.create(name="overrun", actor_name="test_sched_overrun",
                                       cron="* * * * *")

    schedule_enqueue(schedule=schedule)
    drain(broker, worker)

    assert outcome(schedule) == ScheduleOutcome.FAILED
    assert schedule.last_error == "TimeLimitExceeded"
    assert not redis_client.exists(run_lock_key(schedule.pk))
    assert runs == ["overrun"]


@pytest.mark.django_db(transaction=True)
def test_lock_ttl_is_time_limit_plus_margin(broker, worker, redis_client):
    schedule = Schedule.objects.create(name="slow", actor_name="test_sched_slow",
                                       cron="* * * * *")
    schedule_enqueue(schedule=schedule)
    assert started.wait(10)

    ttl_ms = redis_client.pttl(run_lock_key(schedule.pk))

    assert 60_000 < ttl_ms <= 90_000  # 30 s limit + 60 s margin
    release.set()
    drain(broker, worker)


@pytest.mark.django_db(transaction=True)
def test_messages_without_schedule_id_take_no_lock(broker, worker, redis_client):
    slow_job.send()
    assert started.wait(10)

    slow_job.send()
    release.set()
    drain(broker, worker)

    assert runs == ["slow", "slow"]
    assert redis_client.keys(key("schedule", "*")) == []
