"""Every attempt is logged as one JSON line; no log line carries personal data."""

import io
import json
import logging

import pytest

from jobs.queues import Queue, jobsite_actor
from tests.conftest import drain

EMAIL = "marc.gagnon@example.ca"
NAME = "Marc-Antoine"
PHONE = "(514) 555-0142"
TOKEN = "tok_live_8fJ2kL9qRt3vX7zB1nM4pQ6w"
BEHAVIOUR = {"fail_first": 0}
CALLS: list[int] = []


@jobsite_actor(queue=Queue.EMAILS, actor_name="test_qfail_receipt_email", max_retries=1,
               min_backoff=1, max_backoff=5)
def receipt_email(user_id: int, address: str, full_name: str, token: str) -> None:
    CALLS.append(user_id)
    raise ValueError(f"mailbox {address} rejected for {full_name}; call {PHONE}; "
                     f"token={token} card 4111 1111 1111 1111")


@jobsite_actor(queue=Queue.PUSH, actor_name="test_qfail_quiet_push")
def quiet_push(user_id: int) -> None:
    CALLS.append(user_id)


@pytest.fixture
def stderr_output():
    """What the project's configured stderr handler (from settings.LOGGING) writes."""
    [handler] = [h for h in logging.getLogger().handlers if h.name == "stderr"]
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    CALLS.clear()
    yield buffer
    handler.setStream(previous)


def _lines(buffer: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


@pytest.mark.django_db(transaction=True)
def test_each_attempt_is_one_structured_line(broker, worker, stderr_output):
    # given a job that succeeds and one that is skipped for being too old
    ok = quiet_push.send(5)
    stale = quiet_push.send_with_options(args=(6,), max_age=1)

    # when the worker handles them
    drain(broker, worker)

    # then each got exactly one execution line with the agreed fields
    lines = [line for line in _lines(stderr_output) if line["logger"] == "jobs.execution"]
    by_id = {line["message_id"]: line for line in lines}
    assert len(lines) == 2
    assert {k: by_id[ok.message_id][k] for k in ("actor", "queue", "attempt", "outcome")} == {
        "actor": "test_qfail_quiet_push", "queue": "push", "attempt": 1,
        "outcome": "succeeded"}
    assert isinstance(by_id[ok.message_id]["duration_ms"], int)
    assert by_id[stale.message_id]["outcome"] == "skipped"
    assert CALLS == [5]


@pytest.mark.django_db(transaction=True)
def test_a_failing_job_logs_no_personal_data(broker, worker, stderr_output):
    # given a job whose arguments and exception carry an email, a name, a phone number,
    # a token and a card number
    message = receipt_email.send(12, EMAIL, NAME, TOKEN)

    # when it fails, is retried and fails for good
    drain(broker, worker)

    # then the log shows what happened…
    output = stderr_output.getvalue()
    lines = _lines(stderr_output)
    outcomes = [(line["attempt"], line["outcome"]) for line in lines
                if line["logger"] == "jobs.execution"]
    assert outcomes == [(1, "retrying"), (2, "failed")]
    failures = [line for line in lines if line["msg"].startswith("Failed to process message")]
    assert len(failures) == 2
    assert (f"test_qfail_receipt_email on emails ({message.message_id})"
            in failures[0]["msg"])
    assert failures[0]["exc"].endswith(
        "ValueError: mailbox [argument] rejected for [argument]; call [phone]; "
        "token=[argument] card [card-number]")
    # …and none of the personal data, in any line
    assert CALLS == [12, 12]
    for secret in (EMAIL, NAME, PHONE, TOKEN, "4111 1111 1111 1111", "marc.gagnon"):
        assert secret not in output
