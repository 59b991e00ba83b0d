"""Acknowledgements sent in groups: every ack reaches Redis, errors reach every thread."""

import threading

import redis
from dramatiq import Message
from dramatiq.errors import ConnectionClosed

from jobs.broker import AckGroup

QUEUE = "ackgroup-test"


class CountingAckGroup(AckGroup):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.round_trips = 0

    def _execute(self, group):
        self.round_trips += 1
        return super()._execute(group)


def fetched_messages(broker, count: int) -> list[str]:
    """Enqueue ``count`` messages and fetch them, as a consumer does: in flight."""
    broker.declare_queue(QUEUE)
    for i in range(count):
        broker.enqueue(Message(queue_name=QUEUE, actor_name="nobody", args=(i,), kwargs={},
                               options={}))
    bodies = broker.do_fetch(QUEUE, count)
    assert len(bodies) == count
    return [Message.decode(body).options["redis_message_id"] for body in bodies]


def in_flight(broker, redis_client) -> int:
    return redis_client.scard(f"{broker.namespace}:__acks__.{broker.broker_id}.{QUEUE}")


def ack_from_threads(group, ids, threads: int) -> list[BaseException]:
    errors: list[BaseException] = []
    chunks = [ids[i::threads] for i in range(threads)]
    start = threading.Barrier(threads)

    def run(chunk):
        start.wait()
        for redis_message_id in chunk:
            try:
                group.ack(redis_message_id)
            except BaseException as error:  # noqa: BLE001 - reported to the test
                errors.append(error)

    workers = [threading.Thread(target=run, args=(chunk,)) for chunk in chunks]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
        assert not worker.is_alive(), "an ack never returned"
    return errors


def test_every_ack_reaches_redis_in_fewer_round_trips(broker, redis_client):
    ids = fetched_messages(broker, 400)
    assert in_flight(broker, redis_client) == 400

    group = CountingAckGroup(broker, QUEUE)
    assert ack_from_threads(group, ids, threads=16) == []

    assert in_flight(broker, redis_client) == 0
    assert redis_client.hlen(f"{broker.namespace}:{QUEUE}.msgs") == 0
    assert group.round_trips < 400


def test_a_lone_ack_is_sent_at_once(broker, redis_client):
    [redis_message_id] = fetched_messages(broker, 1)
    group = CountingAckGroup(broker, QUEUE)
    group.ack(redis_message_id)
    assert group.round_trips == 1
    assert in_flight(broker, redis_client) == 0


def test_acks_survive_redis_forgetting_its_scripts(broker, redis_client):
    ids = fetched_messages(broker, 3)
    redis_client.script_flush()  # as after a Redis restart
    group = AckGroup(broker, QUEUE)
    for redis_message_id in ids:
        group.ack(redis_message_id)
    assert in_flight(broker, redis_client) == 0


def test_connection_error_reaches_every_waiting_thread(unreachable_broker):
    group = AckGroup(unreachable_broker, QUEUE)
    errors = ack_from_threads(group, [f"id-{i}" for i in range(40)], threads=8)
    assert len(errors) == 40
    assert all(isinstance(error, ConnectionClosed) for error in errors)
    assert all(isinstance(error.__cause__ or error.args[0], redis.ConnectionError)
               for error in errors)


def test_worker_leaves_nothing_in_flight(broker, worker, redis_client):
    from tests.conftest import drain
    from tests.jobs import actors

    for i in range(200):
        actors.email_noop.send(i)
    drain(broker, worker)
    leftover = [key for key in redis_client.scan_iter(f"{broker.namespace}:__acks__.*")
                if redis_client.type(key) == b"set" and redis_client.scard(key)]
    assert leftover == []
