"""The outside world of email: whatever ``EMAIL_BACKEND`` is — one of anymail's ESPs, or
one of Django's own backends (SMTP, console, file, locmem).

The only module that sends email and reads what sending raised. It keeps one open
connection per worker thread and turns every failure into an :class:`EmailSendError`
that says whether retrying can help and what happened, by exception types and HTTP or
SMTP status only: a provider's error text may quote the address, and it never leaves
this module.
"""

from __future__ import annotations

import logging
import smtplib
import threading
from typing import Any

from anymail.exceptions import (
    AnymailAPIError,
    AnymailError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from django.core.mail import EmailMessage, get_connection
from django.core.signals import setting_changed

from jobs.scrub import exception_chain

logger = logging.getLogger(__name__)


class EmailSendError(Exception):
    """Sending failed. ``permanent``: retrying cannot help (the provider refused the
    request or the recipient: a 4xx, a 5xx SMTP reply). ``recipient_refused``: the
    address itself was refused. ``description`` names the exception types of the cause
    chain and the status, never a message text."""

    def __init__(self, description: str, *, permanent: bool, recipient_refused: bool = False):
        super().__init__(description)
        self.description = description
        self.permanent = permanent
        self.recipient_refused = recipient_refused


def _http_status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    return status if isinstance(status, int) else None


def classify(exc: BaseException) -> EmailSendError:
    """What a backend's exception means for the email."""
    description = exception_chain(exc)
    if isinstance(exc, AnymailRecipientsRefused | smtplib.SMTPRecipientsRefused):
        return EmailSendError(description, permanent=True, recipient_refused=True)
    if isinstance(exc, AnymailInvalidAddress):
        return EmailSendError(description, permanent=True, recipient_refused=True)
    if isinstance(exc, AnymailAPIError):
        status = _http_status(exc)
        # 4xx means the request itself is wrong, except 429 (too many requests).
        permanent = status is not None and 400 <= status < 500 and status != 429
        return EmailSendError(description, permanent=permanent)
    if isinstance(exc, smtplib.SMTPAuthenticationError):
        # Our credentials, not this email: retried, and a staff Retry once fixed.
        return EmailSendError(description, permanent=False)
    if isinstance(exc, smtplib.SMTPResponseException):
        return EmailSendError(description, permanent=500 <= exc.smtp_code < 600)
    if isinstance(exc, AnymailError):
        # Configuration and feature errors: retrying does not change them, but fixing
        # the settings and retrying from the failed-job list does.
        return EmailSendError(description, permanent=False)
    # Network and server trouble (refused connection, timeout, disconnect): transient.
    return EmailSendError(description, permanent=False)


# One open connection per worker thread, reused for every email it sends: an HTTP ESP
# keeps its keep-alive session (no TLS handshake per email), an SMTP server its session,
# and no backend is built per email (~0.3 ms of CPU each, measured with anymail's test
# backend). Dropped after an error and whenever email settings change.
_local = threading.local()
_generation = [0]


def _connection() -> Any:
    connection = getattr(_local, "connection", None)
    if connection is None or _local.generation != _generation[0]:
        connection_drop()
        connection = get_connection()
        connection.open()
        _local.connection, _local.generation = connection, _generation[0]
    return connection


def connection_drop() -> None:
    """Close this thread's connection; the next email opens a new one."""
    connection = getattr(_local, "connection", None)
    _local.connection = None
    if connection is not None:
        try:
            connection.close()
        except Exception:  # already broken: dropping it is all that is left to do
            logger.debug("email connection close failed", exc_info=True)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("EMAIL_", "ANYMAIL", "POSTMARK", "SENDGRID", "MAILGUN", "AWS_SES")):
        _generation[0] += 1


setting_changed.connect(_on_setting_changed)


def send(message: EmailMessage) -> str:
    """Send ``message`` on this thread's connection. Returns the provider's message id
    when it reports one (anymail), else ``""``.

    Raises:
      EmailSendError: it was not sent (see :func:`classify`).
    """
    for reused in (True, False):
        try:
            message.connection = _connection()
            message.send()
            break
        except smtplib.SMTPServerDisconnected as exc:
            # An SMTP server closes idle sessions: one reconnect before it counts.
            connection_drop()
            if not reused:
                raise classify(exc) from None
        except Exception as exc:
            connection_drop()
            raise classify(exc) from None
    status = getattr(message, "anymail_status", None)  # only anymail's backends set it
    esp_id = getattr(status, "message_id", None)
    return "" if esp_id is None else str(esp_id)[:255]
