"""jobs.scrub: what is removed from exception messages, tracebacks and Dramatiq logs."""

import logging

import dramatiq
import pytest

from jobs.scrub import DramatiqLogFilter, scrub


@pytest.mark.parametrize(("text", "expected"), [
    ("invalid recipient Jane.Doe+ca@example.co.uk", "invalid recipient [email]"),
    ("call (416) 555-0199 or +1 647 555 0100", "call [phone] or [phone]"),
    ("sms to 416.555.0123 failed", "sms to [phone] failed"),
    ("card 4242 4242 4242 4242 declined", "card [card-number] declined"),
    ("card 4242-4242-4242-4242", "card [card-number]"),
    ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.abc", "Authorization: Bearer [redacted]"),
    ("password=hunter2&user=5", "password=[redacted]&user=5"),
    ("api_key: 'sk_live_abc'", "api_key: '[redacted]'"),
    ("key sk_test_51HxYzAbCdEfGhIjKlMnOp rejected", "key [secret] rejected"),
    # A dotted token is no Python name: a JWT's pieces are long and random.
    ("got eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r "
     "back", "got [secret] back"),
])
def test_personal_data_is_replaced(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    'File "/usr/lib/python3.11/site-packages/dramatiq/worker.py", line 581, in process',
    "message 3f2a1b4c-1234-4abc-8def-0123456789ab of order 12345 on queue emails",
    "eta 1732900000124 reached",  # a millisecond timestamp is not a card (fails Luhn)
    "ValueError: rating must be between 1 and 5",
    # Exception types of a cause chain: before, each of these became [secret]
    "urllib3.exceptions.NewConnectionError <- ConnectionRefusedError",
    "urllib3.exceptions.MaxRetryError: HTTPConnectionPool(host='127.0.0.1', port=1)",
    "anymail.exceptions.AnymailRequestsAPIError (HTTP 503)",
])
def test_operational_text_is_kept(text):
    assert scrub(text) == text


def test_long_text_is_truncated_before_scrubbing():
    assert scrub("a" * 50, max_length=10) == "a" * 10 + "…"


def _record(name: str, msg: str, *args, exc_info=None) -> logging.LogRecord:
    return logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, exc_info)


def test_dramatiq_records_lose_message_arguments_and_exception_text():
    message = dramatiq.Message(queue_name="emails", actor_name="send_receipt",
                               args=(7, "Ann Lee"), kwargs={}, options={})
    try:
        raise ValueError("bounced: ann@example.com for Ann Lee")
    except ValueError:
        import sys

        record = _record("dramatiq.worker.WorkerThread",
                         "Failed to process message %s with unhandled exception.", message,
                         exc_info=sys.exc_info())

    assert DramatiqLogFilter().filter(record) is True

    assert record.getMessage() == (
        f"Failed to process message send_receipt on emails ({message.message_id}) "
        "with unhandled exception.")
    assert record.exc_info is None
    # the email by its pattern, the name because it is one of the message's arguments
    assert "ValueError: bounced: [email] for [argument]" in record.exc_text
    assert "ann@example.com" not in record.exc_text and "Ann Lee" not in record.exc_text


def test_other_loggers_are_left_alone():
    record = _record("marketplace.views", "user %s", "ann@example.com")
    DramatiqLogFilter().filter(record)
    assert record.getMessage() == "user ann@example.com"


@pytest.mark.parametrize("logger_name", ["django.request", "notifications.webhooks",
                                         "payments.stripe", "root"])
def test_every_loggers_exception_text_is_scrubbed(stderr_output, logger_name):
    # Before: the request-log filter cleaned the message and the request, not the
    # exception ("Malformed SNS message body b'{…victim@example.com…'").
    body = b'{"Email": "victim@example.com", "Phone": "+1 416 555 0199"}'
    log = logging.getLogger(None if logger_name == "root" else logger_name)
    try:
        raise ValueError(f"Malformed SNS message body {body!r}")
    except ValueError:
        log.exception("Internal Server Error: /webhooks/anymail/amazon_ses/tracking/")

    written = stderr_output.getvalue()
    assert "Malformed SNS message body" in written and "ValueError" in written
    assert "victim@example.com" not in written and "555 0199" not in written
    assert "[email]" in written
