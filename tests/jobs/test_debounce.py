"""Debounced jobs (jobs.debounce) through the real broker, middleware and a real worker."""

import threading
import time

import pytest
from django.db import transaction

from jobs.debounce import debounce_key, enqueue_debounced
from jobs.queues import Queue, jobsite_actor
from tests.conftest import drain

RUNS: list[int] = []
STARTED = threading.Event()
GO_ON = threading.Event()


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="test_debounced_subject")
def subject_recalculate(subject_id: int) -> None:
    RUNS.append(subject_id)


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="test_debounced_slow_subject")
def slow_subject_recalculate(subject_id: int) -> None:
    RUNS.append(subject_id)
    STARTED.set()
    GO_ON.wait(10)


@pytest.fixture(autouse=True)
def _reset():
    RUNS.clear()
    STARTED.clear()
    GO_ON.clear()


@pytest.mark.django_db(transaction=True)
def test_a_burst_of_fifty_calls_runs_once_per_subject(broker, worker, redis_client):
    # given fifty committed changes for subject 7 and three for subject 8, in separate
    # transactions, within the delay
    for _ in range(50):
        with transaction.atomic():
            enqueue_debounced(subject_recalculate, 7, delay_ms=300)
    for _ in range(3):
        with transaction.atomic():
            enqueue_debounced(subject_recalculate, 8, delay_ms=300)

    # when the delay passes and the worker drains the queue
    time.sleep(0.4)
    drain(broker, worker)

    # then each subject ran exactly once and no claim is left behind
    assert sorted(RUNS) == [7, 8]
    assert redis_client.keys("*debounce*") == []


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_claims_nothing(broker, worker, redis_client):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_debounced(subject_recalculate, 9, delay_ms=0)
        raise RuntimeError("rolled back")
    drain(broker, worker)
    assert RUNS == []
    assert not redis_client.exists(debounce_key("test_debounced_subject", (9,), {}))


@pytest.mark.django_db(transaction=True)
def test_a_change_committed_while_the_run_executes_gets_a_run_of_its_own(
        broker, worker, redis_client):
    # given a debounced run that has started (its claim released)
    enqueue_debounced(slow_subject_recalculate, 5, delay_ms=0)
    assert STARTED.wait(10)

    # when another change for the same subject commits while it runs
    enqueue_debounced(slow_subject_recalculate, 5, delay_ms=0)
    GO_ON.set()
    drain(broker, worker)

    # then a second run follows: the first may have read the rows before that change
    assert RUNS == [5, 5]


@pytest.mark.django_db(transaction=True)
def test_the_claim_expires_if_its_message_never_runs(broker, redis_client, monkeypatch):
    # a message lost with its queue blocks new runs only until the claim expires
    monkeypatch.setattr("jobs.debounce.CLAIM_MARGIN_MS", 200)
    enqueue_debounced(subject_recalculate, 3, delay_ms=100)
    name = debounce_key("test_debounced_subject", (3,), {})
    assert 0 < redis_client.pttl(name) <= 300
    broker.flush_all()
    time.sleep(0.35)
    assert not redis_client.exists(name)
