"""Retries: exponential backoff then success, the email retry budget, permanent errors."""

import threading

import pytest

from jobs.models import FailedJob
from jobs.queues import QUEUE_POLICIES, PermanentError, Queue, jobsite_actor
from tests.conftest import drain

_lock = threading.Lock()
ATTEMPTS: dict[str, int] = {}


def _count(key: str) -> int:
    with _lock:
        ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
        return ATTEMPTS[key]


@pytest.fixture(autouse=True)
def _reset_attempts():
    ATTEMPTS.clear()
    yield
    ATTEMPTS.clear()


# Small backoffs through actor options: the retry path is the real one, just quicker.
@jobsite_actor(queue=Queue.PUSH, actor_name="test_qfail_flaky_push", max_retries=3,
               min_backoff=10, max_backoff=40)
def flaky_push(key: str, failures: int) -> None:
    if _count(key) <= failures:
        raise ConnectionError("provider timed out")


@jobsite_actor(queue=Queue.EMAILS, actor_name="test_qfail_always_failing_email",
               min_backoff=1, max_backoff=10)
def always_failing_email(key: str) -> None:
    _count(key)
    raise ConnectionError("ESP unavailable")


@jobsite_actor(queue=Queue.PAYMENTS, actor_name="test_qfail_rejected_payment",
               min_backoff=1, max_backoff=10)
def rejected_payment(key: str) -> None:
    _count(key)
    raise PermanentError("provider answered 400: invalid amount")


def _execution_records(caplog, message_id: str) -> list[tuple[int, str]]:
    return [(r.attempt, r.outcome) for r in caplog.records
            if r.name == "jobs.execution" and r.message_id == message_id]


@pytest.mark.django_db(transaction=True)
def test_a_failing_job_is_retried_with_backoff_then_succeeds(broker, worker, caplog):
    # given a job that fails twice before succeeding
    caplog.set_level("INFO", logger="jobs.execution")
    message = flaky_push.send("flaky-1", 2)

    # when the worker runs it
    drain(broker, worker)

    # then it ran three times, succeeded, and left no failed-job record
    assert ATTEMPTS["flaky-1"] == 3
    assert _execution_records(caplog, message.message_id) == [
        (1, "retrying"), (2, "retrying"), (3, "succeeded")
    ]
    assert not FailedJob.objects.filter(message_id=message.message_id).exists()
    assert broker.client.zcard(f"{broker.namespace}:push.XQ") == 0


def test_email_queue_defaults_to_five_retries_with_exponential_backoff():
    policy = QUEUE_POLICIES[Queue.EMAILS]
    assert policy.max_retries == 5
    assert always_failing_email.options["max_retries"] == 5
    assert always_failing_email.options["throws"] == (PermanentError,)
    # an actor's overrides win over the queue's defaults
    assert flaky_push.options["max_retries"] == 3
    assert flaky_push.options["min_backoff"] == 10


def test_extra_throws_keep_permanent_error_unretried():
    @jobsite_actor(queue=Queue.IMAGES, actor_name="test_qfail_throws_override",
                   throws=ValueError)
    def throws_override() -> None:
        pass

    assert throws_override.options["throws"] == (PermanentError, ValueError)


@pytest.mark.django_db(transaction=True)
def test_an_email_job_is_tried_six_times_then_recorded_as_failed(broker, worker):
    # given an email job whose provider never answers
    message = always_failing_email.send("email-1")

    # when the worker has exhausted its retries
    drain(broker, worker)

    # then it ran once plus five retries, and is recorded with that attempt count
    assert ATTEMPTS["email-1"] == 6
    failed = FailedJob.objects.get(message_id=message.message_id)
    assert failed.attempts == 6
    assert failed.actor_name == "test_qfail_always_failing_email"
    assert failed.queue_name == "emails"
    assert failed.exception_type == "ConnectionError"
    assert failed.first_failed_at < failed.last_failed_at


@pytest.mark.django_db(transaction=True)
def test_a_permanent_error_is_not_retried(broker, worker, caplog):
    # given a payment job the provider rejects with a 4xx
    caplog.set_level("INFO", logger="jobs.execution")
    message = rejected_payment.send("payment-1")

    # when the worker runs it
    drain(broker, worker)

    # then it ran exactly once and went straight to the failed-job list
    assert ATTEMPTS["payment-1"] == 1
    assert _execution_records(caplog, message.message_id) == [(1, "failed")]
    failed = FailedJob.objects.get(message_id=message.message_id)
    assert failed.attempts == 1
    assert failed.exception_type == "PermanentError"
    assert failed.exception_message == "provider answered 400: invalid amount"
    assert failed.first_failed_at == failed.last_failed_at
