"""Fixtures for the notifications tests: anymail's test backend, a local Postmark API."""

import pytest
from django.core import mail

from marketplace.models import User
from notifications.tasks import send_email_task


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    # pytest-django switches EMAIL_BACKEND to locmem; email here goes through anymail.
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mail.outbox = []
    yield
    mail.outbox = []


@pytest.fixture
def fast_retries(monkeypatch):
    """Millisecond backoffs for send_email_task (production starts at 15 s)."""
    monkeypatch.setitem(send_email_task.options, "min_backoff", 10)
    monkeypatch.setitem(send_email_task.options, "max_backoff", 40)


@pytest.fixture
def postmark(settings, httpserver):
    """anymail's real Postmark backend, talking to a local HTTP server."""
    settings.EMAIL_BACKEND = "anymail.backends.postmark.EmailBackend"
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "POSTMARK_SERVER_TOKEN": "test-server-token",
        "POSTMARK_API_URL": httpserver.url_for("/"),
    }
    return httpserver


def postmark_ok(address: str, message_id: str) -> dict:
    return {"To": address, "SubmittedAt": "2026-11-29T08:00:00.0000000-05:00",
            "MessageID": message_id, "ErrorCode": 0, "Message": "OK"}


def make_user(email: str = "ada@example.test", *, language: str = "en",
              first_name: str = "Ada", **fields) -> User:
    return User.objects.create_user(email, "pw-ada-12345", preferred_language=language,
                                    first_name=first_name, last_name="Lovelace", **fields)


def queued_messages(broker, queue: str = "emails") -> int:
    """Messages waiting on ``queue`` (ready, delayed or unacknowledged)."""
    return broker.do_qsize(queue)


def dead_letters(broker, queue: str = "emails") -> list[bytes]:
    return list(broker.client.hvals(f"{broker.namespace}:{queue}.XQ.msgs"))
