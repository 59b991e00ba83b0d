"""Job payloads are encrypted in Redis; an undecryptable message is dead-lettered."""

import json
import threading
import time

import dramatiq
import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from jobs.encryption import EncryptedJSONEncoder, UndecryptableMessage, envelope_ids
from jobs.enqueue import enqueue_on_commit
from jobs.models import FailedJob
from jobs.queues import PermanentError, Queue, jobsite_actor
from jobs.redis import key
from marketplace.models import User
from tests.conftest import drain

EMAIL = "gwendolyn.tremblay@example.ca"
NAME = "Gwendolyn"
TOKEN = "rst_Zq8XkP2mW9vL4nB7cD1eF5gH0jK6aa"

_lock = threading.Lock()
RUNS: list[str] = []


@pytest.fixture(autouse=True)
def _reset():
    RUNS.clear()


@jobsite_actor(queue=Queue.EMAILS, actor_name="test_qfail_welcome_email", min_backoff=60_000)
def welcome_email(user_id: int, address: str, first_name: str, reset_token: str) -> None:
    with _lock:
        RUNS.append(f"welcome:{user_id}")
    if first_name == "fail-later":
        raise ConnectionError("ESP down")


@jobsite_actor(queue=Queue.PUSH, actor_name="test_qfail_token_push")
def token_push(user_id: int, reset_token: str) -> None:
    with _lock:
        RUNS.append(f"push:{user_id}")
    raise PermanentError("device unknown")


def _wait_until(predicate, *, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.02)


def _every_stored_byte(client, *, skip_prefix: bytes | None = None) -> list[bytes]:
    """Every key name and every value of every key in the Redis database, by type."""
    found: list[bytes] = []
    for name in client.scan_iter(count=500):
        if skip_prefix and name.startswith(skip_prefix):
            continue
        found.append(name)
        kind = client.type(name).decode()
        if kind == "string":
            found.append(client.get(name))
        elif kind == "list":
            found.extend(client.lrange(name, 0, -1))
        elif kind == "hash":
            for field, value in client.hgetall(name).items():
                found.extend([field, value])
        elif kind == "set":
            found.extend(client.smembers(name))
        elif kind == "zset":
            found.extend(member for member, _ in client.zrange(name, 0, -1, withscores=True))
        elif kind == "stream":
            for _, fields in client.xrange(name):
                for field, value in fields.items():
                    found.extend([field, value])
        else:
            raise AssertionError(f"unexpected Redis type {kind} for {name!r}")
    return found


@pytest.mark.django_db(transaction=True)
def test_redis_holds_no_personal_data_in_clear_text(broker, worker, redis_client):
    # given a user whose email, name and a token go into job arguments, in every state a
    # message can be in: queued, delayed, waiting for a retry, and dead-lettered
    user = User.objects.create_user(EMAIL, "pw-gwen-12345", first_name=NAME)
    token_push.send(user.pk, TOKEN)                                   # → dead-letter set
    welcome_email.send(user.pk, EMAIL, "fail-later", TOKEN)           # → retry in 60 s
    welcome_email.send_with_options(args=(user.pk, EMAIL, NAME, TOKEN), delay=600_000)
    _wait_until(lambda: FailedJob.objects.filter(actor_name="test_qfail_token_push").exists())
    _wait_until(lambda: f"welcome:{user.pk}" in RUNS)
    _wait_until(lambda: redis_client.hlen(f"{broker.namespace}:emails.DQ.msgs") == 2)
    worker.pause()
    enqueue_on_commit(welcome_email, user.pk, EMAIL, NAME, TOKEN)   # → waiting in queue
    assert redis_client.hlen(f"{broker.namespace}:emails.msgs") == 1
    assert redis_client.zcard(f"{broker.namespace}:push.XQ") == 1

    # when every key of the database is read, whatever its type
    stored = _every_stored_byte(redis_client)

    # then the email address, the name and the token are nowhere in clear text
    assert len(stored) > 10
    blob = b"\n".join(stored)
    for needle in (EMAIL, NAME, TOKEN, "gwendolyn"):
        assert needle.encode() not in blob
    # and neither is anything else of the bodies: the actor name is inside the ciphertext
    # (job statistics, jobs.stats, count jobs per queue and actor name by design: those keys
    # hold names and numbers only, and are checked above with everything else)
    message_keys = b"\n".join(
        value for value in _every_stored_byte(redis_client, skip_prefix=key("stats", "").encode())
    )
    assert b"test_qfail_welcome_email" not in message_keys


def test_encoder_round_trips_and_hides_the_body():
    encoder = EncryptedJSONEncoder()
    data = {"queue_name": "emails", "actor_name": "a", "args": [EMAIL], "kwargs": {},
            "options": {"redis_message_id": "r-1"}, "message_id": "m-1",
            "message_timestamp": 1}

    body = encoder.encode(data)

    assert EMAIL.encode() not in body
    assert envelope_ids(body) == ("m-1", "r-1")
    assert encoder.decode(body) == data


def test_rotated_keys_still_decrypt_older_messages():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    encoder = EncryptedJSONEncoder()
    data = {"message_id": "m-2", "args": [1], "options": {}}
    with override_settings(JOB_PAYLOAD_KEYS=[old]):
        body = encoder.encode(data)

    # the new key encrypts, the old one still decrypts
    with override_settings(JOB_PAYLOAD_KEYS=[new, old]):
        assert encoder.decode(body) == data
    # once the old key is dropped, the body is rejected, not guessed at
    with override_settings(JOB_PAYLOAD_KEYS=[new]), pytest.raises(UndecryptableMessage):
        encoder.decode(body)


def test_a_malformed_key_is_a_clear_configuration_error():
    good = Fernet.generate_key().decode()
    with override_settings(JOB_PAYLOAD_KEYS=[good, "not-a-key"]):
        with pytest.raises(ImproperlyConfigured, match="JOB_PAYLOAD_KEYS entry #2") as error:
            EncryptedJSONEncoder().encode({"message_id": "m", "options": {}})
    assert "not-a-key" not in str(error.value)


def test_plain_json_is_rejected():
    body = json.dumps({"message_id": "m-3", "options": {"redis_message_id": "r-3"}}).encode()
    with pytest.raises(UndecryptableMessage) as error:
        EncryptedJSONEncoder().decode(body)
    assert (error.value.message_id, error.value.redis_message_id) == ("m-3", "r-3")


@pytest.mark.django_db(transaction=True)
def test_message_with_a_wrong_key_is_dead_lettered_not_retried(broker, worker, caplog):
    # given a message written with a key the workers do not have
    worker.pause()
    with override_settings(JOB_PAYLOAD_KEYS=[Fernet.generate_key().decode()]):
        bad = welcome_email.send(1, EMAIL, NAME, TOKEN)
    good = welcome_email.message(2, "x@example.test", "ok", "t")

    # when the worker meets it, followed by a good message
    worker.resume()
    _wait_until(lambda: broker.client.zcard(f"{broker.namespace}:emails.XQ") == 1)
    broker.enqueue(good)
    drain(broker, worker)

    # then the bad message is in the dead-letter set, never ran, and the worker went on
    assert RUNS == ["welcome:2"]
    [dead_id] = broker.client.zrange(f"{broker.namespace}:emails.XQ", 0, -1)
    dead_body = broker.client.hget(f"{broker.namespace}:emails.XQ.msgs", dead_id)
    assert envelope_ids(dead_body)[0] == bad.message_id
    assert broker.client.hlen(f"{broker.namespace}:emails.msgs") == 0
    # and it is in the failed-job list, actor unknown
    failed = FailedJob.objects.get(message_id=bad.message_id)
    assert failed.actor_name == ""
    assert failed.queue_name == "emails"
    assert failed.exception_type == "UndecryptableMessage"
    assert "JOB_PAYLOAD_KEYS" in failed.exception_message
    # and the log says why, without the body
    [record] = [r for r in caplog.records if r.getMessage() == "Undecodable message dead-lettered"]
    assert record.message_id == bad.message_id
    # (the ciphertext is raw bytes: neither them nor their hex or repr are logged)
    tail = dead_body[-24:]
    for shown in (tail.decode("latin-1"), tail.hex(), repr(tail)[2:-1]):
        assert not any(shown in r.getMessage() for r in caplog.records)


def test_the_project_broker_uses_the_encrypting_encoder():
    assert isinstance(dramatiq.get_encoder(), EncryptedJSONEncoder)


def test_a_body_is_aes_gcm_bound_to_its_clear_ids():
    # given a body encrypted for message m-4
    encoder = EncryptedJSONEncoder()
    body = encoder.encode({"message_id": "m-4", "args": [1],
                           "options": {"redis_message_id": "r-4"}})
    assert body.startswith(b"jse2:m-4.r-4:")

    # when its clear ids are swapped for another message's
    swapped = body.replace(b"jse2:m-4.r-4:", b"jse2:m-5.r-5:", 1)

    # then it is rejected (the ids are authenticated with the ciphertext), named by its ids
    with pytest.raises(UndecryptableMessage) as error:
        encoder.decode(swapped)
    assert (error.value.message_id, error.value.redis_message_id) == ("m-5", "r-5")
    # and a truncated body is rejected the same way
    with pytest.raises(UndecryptableMessage):
        encoder.decode(body[:30])
    with pytest.raises(UndecryptableMessage):
        encoder.decode(b"jse2:no-header")


def test_fernet_bodies_queued_before_aes_gcm_still_decrypt():
    # given a body written by the previous encoder (a Fernet token under the same key)
    key = Fernet.generate_key().decode()
    data = {"message_id": "m-6", "args": [7], "options": {"redis_message_id": "r-6"}}
    token = Fernet(key.encode()).encrypt(json.dumps(data).encode())
    body = b"jse1:m-6.r-6:" + token

    # when a worker with that key decodes it, then it runs as before
    with override_settings(JOB_PAYLOAD_KEYS=[Fernet.generate_key().decode(), key]):
        assert EncryptedJSONEncoder().decode(body) == data
        assert envelope_ids(body) == ("m-6", "r-6")
