"""enqueue_on_commit against the real broker and a transactional database."""

import pytest
from django.db import transaction

from jobs.encryption import envelope_ids
from jobs.enqueue import enqueue_on_commit
from jobs.queues import Queue, jobsite_actor
from marketplace.models import User
from tests.conftest import drain

SEEN_EMAILS: list[str] = []


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="test_qfail_user_seen")
def user_seen(user_id: int) -> None:
    # Reads the row as the worker sees it: committed data only.
    SEEN_EMAILS.append(User.objects.get(pk=user_id).email)


def _queued(broker) -> int:
    return broker.client.hlen(f"{broker.namespace}:analytics.msgs")


@pytest.fixture(autouse=True)
def _reset():
    SEEN_EMAILS.clear()


@pytest.mark.django_db(transaction=True)
def test_message_is_sent_only_after_the_transaction_commits(broker, worker):
    # given a service that creates a row and enqueues a job for it in one transaction
    worker.pause()
    with transaction.atomic():
        user = User.objects.create_user("onc@example.test", "pw-onc-12345")
        message_id = enqueue_on_commit(user_seen, user.pk)
        # then nothing is in Redis while the transaction is open
        assert _queued(broker) == 0

    # when it commits, the message is in Redis under the id the caller got
    assert _queued(broker) == 1
    [body] = broker.client.hvals(f"{broker.namespace}:analytics.msgs")
    assert envelope_ids(body)[0] == message_id
    worker.resume()
    drain(broker, worker)

    # and the worker found the committed row
    assert SEEN_EMAILS == ["onc@example.test"]


@pytest.mark.django_db(transaction=True)
def test_nothing_is_sent_when_the_transaction_rolls_back(broker, worker):
    # given a transaction that enqueues a job and then fails
    with pytest.raises(RuntimeError), transaction.atomic():
        user = User.objects.create_user("rb@example.test", "pw-rb-123456")
        enqueue_on_commit(user_seen, user.pk)
        raise RuntimeError("validation failed after the enqueue")

    # when the worker has had the chance to run everything queued
    drain(broker, worker)

    # then no message was sent and no job ran
    assert _queued(broker) == 0
    assert SEEN_EMAILS == []
    assert not User.objects.filter(email="rb@example.test").exists()


@pytest.mark.django_db(transaction=True)
def test_outside_a_transaction_the_message_is_sent_at_once(broker):
    user = User.objects.create_user("auto@example.test", "pw-auto-12345")

    enqueue_on_commit(user_seen, user.pk)

    assert _queued(broker) == 1


def _queued_ids(broker, queue: str = "analytics") -> list[str]:
    bodies = broker.client.hvals(f"{broker.namespace}:{queue}.msgs")
    return sorted(envelope_ids(body)[0] for body in bodies)


@pytest.mark.django_db(transaction=True)
def test_a_transactions_messages_go_to_redis_together_at_commit(broker):
    from django.db import connection

    with transaction.atomic():
        ids = [enqueue_on_commit(user_seen, n) for n in range(50)]
        # one commit callback (the transaction's outbox), not fifty
        assert len(connection.run_on_commit) == 1
        assert _queued(broker) == 0

    assert _queued_ids(broker) == sorted(ids)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_savepoint_takes_only_its_own_messages(broker):
    with transaction.atomic():
        kept_before = enqueue_on_commit(user_seen, 1)
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue_on_commit(user_seen, 2)
            raise RuntimeError("this part fails")
        with transaction.atomic():  # a savepoint that succeeds
            kept_inner = enqueue_on_commit(user_seen, 3)
        kept_after = enqueue_on_commit(user_seen, 4)

    assert _queued_ids(broker) == sorted([kept_before, kept_inner, kept_after])


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_transactions_outbox_is_never_reused(broker):
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(user_seen, 1)
        raise RuntimeError("rolled back")

    with transaction.atomic():
        sent = enqueue_on_commit(user_seen, 2)

    assert _queued_ids(broker) == [sent]


@pytest.mark.django_db(transaction=True)
def test_delayed_messages_wait_in_the_delay_queue(broker):
    with transaction.atomic():
        delayed = enqueue_on_commit(user_seen, 1, _delay_ms=60_000)
        now = enqueue_on_commit(user_seen, 2)

    assert _queued_ids(broker) == [now]
    assert _queued_ids(broker, "analytics.DQ") == [delayed]


@pytest.mark.django_db(transaction=True)
def test_the_batch_runs_through_the_worker(broker, worker):
    users = []
    with transaction.atomic():
        for n in range(5):
            user = User.objects.create_user(f"batch{n}@example.test", "pw-batch-12345")
            users.append(user.email)
            enqueue_on_commit(user_seen, user.pk)
    drain(broker, worker)
    assert sorted(SEEN_EMAILS) == sorted(users)


def test_enqueue_many_raises_when_redis_is_unreachable(unreachable_broker):
    import redis

    with pytest.raises(redis.ConnectionError):
        unreachable_broker.enqueue_many([(user_seen.message(1), None)])
