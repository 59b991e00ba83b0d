"""Every attempt is logged as one JSON line; no log line carries personal data."""

import io
import json
import logging
import time

import pytest

from jobs.logging import BufferedStreamHandler, JsonFormatter
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


@pytest.fixture(autouse=True)
def _no_calls_yet():
    CALLS.clear()


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


def _record(level: int, text: str, **extra) -> logging.LogRecord:
    logger = logging.getLogger("jobs.test_buffered")
    return logger.makeRecord(logger.name, level, __file__, 1, text, (), None, extra=extra)


def test_buffered_handler_writes_info_in_batches_and_warnings_at_once():
    # given a buffered handler with a long interval (only flushes and warnings write)
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, flush_interval=3600)
    handler.setFormatter(JsonFormatter())
    handler.start_buffering()  # as in a worker process
    try:
        # when two INFO lines are logged, they wait in memory
        handler.handle(_record(logging.INFO, "first", attempt=1))
        handler.handle(_record(logging.INFO, "second", attempt=2))
        assert stream.getvalue() == ""

        # when a WARNING follows, everything is written at once, in order
        handler.handle(_record(logging.WARNING, "third"))
        assert [json.loads(line)["msg"] for line in stream.getvalue().splitlines()] == [
            "first", "second", "third"]

        # and an INFO line after it waits for the next flush, then is written
        handler.handle(_record(logging.INFO, "fourth", attempt=4))
        assert len(stream.getvalue().splitlines()) == 3
        handler.flush()
        last = json.loads(stream.getvalue().splitlines()[-1])
        assert (last["msg"], last["attempt"], last["level"]) == ("fourth", 4, "INFO")
    finally:
        handler.close()


def test_buffered_handler_writes_waiting_lines_within_its_interval():
    # given a handler flushing every 50 ms
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, flush_interval=0.05)
    handler.setFormatter(JsonFormatter())
    handler.start_buffering()
    try:
        # when an INFO line is logged and nothing else happens
        handler.handle(_record(logging.INFO, "alone"))

        # then its flush thread writes it without anyone calling flush()
        deadline = time.monotonic() + 10
        while not stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert json.loads(stream.getvalue())["msg"] == "alone"
    finally:
        handler.close()


def test_outside_worker_processes_every_line_is_written_at_once():
    # given the handler as a web or scheduler process has it (buffering never started)
    stream = io.StringIO()
    handler = BufferedStreamHandler(stream, flush_interval=3600)
    handler.setFormatter(JsonFormatter())
    try:
        # when an INFO line is logged, then it is written at once
        handler.handle(_record(logging.INFO, "scheduler became the leader"))
        assert json.loads(stream.getvalue())["msg"] == "scheduler became the leader"
    finally:
        handler.close()


def test_json_timestamp_is_iso_utc_with_milliseconds():
    # given a record made at a known instant
    record = _record(logging.INFO, "at a time")
    record.created, record.msecs = 1_795_000_000.987654, 987.0

    # when it is formatted, the timestamp is the instant in UTC to the millisecond
    line = json.loads(JsonFormatter().format(record))
    assert line["ts"] == "2026-11-18T11:06:40.987+00:00"


def test_lean_log_records_keep_every_printed_field():
    """A worker process's lean records (no caller, thread or process details) print the
    same JSON as full ones, tracebacks included."""
    import subprocess
    import sys

    script = r"""
import io, json, logging, sys
from jobs.logging import JsonFormatter, lean_log_records
def line():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    log = logging.getLogger("lean-test")
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    log.info("job %s", "succeeded", extra={"actor": "a", "attempt": 1})
    try:
        1 / 0
    except ZeroDivisionError:
        log.exception("boom")
    return [json.loads(x) for x in stream.getvalue().splitlines()]
full = line()
lean_log_records()
lean = line()
assert logging.LogRecord("x", 20, "", 0, "", (), None).thread is None
for a, b in zip(full, lean):
    a.pop("ts"); b.pop("ts")
    assert a == b, (a, b)
print(len(lean))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2"
