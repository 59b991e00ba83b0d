"""Delivering email: what ``send_email_task`` runs for one ``EmailLog`` row.

The row is claimed first (``queued`` → ``sending``, a conditional UPDATE), so two
deliveries of the same message never both send, and no row lock or transaction is held
while the provider answers. The email is rendered in the recipient's language at send
time and sent through ``notifications.esp`` with a ``Message-ID`` that is the same on
every attempt, so a receiver or an ESP can drop a repeat.
"""

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.utils import parseaddr
from functools import lru_cache
from uuid import uuid4

import dramatiq
from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from jobs.queues import PermanentError
from jobs.recovery import heartbeat_timeout_ms
from jobs.redis import get_redis, key
from jobs.stateful import Unfinished
from notifications import esp
from notifications.extensions import email_attachments
from notifications.kinds import KINDS, EmailContentError
from notifications.models import EmailLog, EmailStatus, SuppressionReason
from notifications.rendering import render_email
from notifications.services import sql
from notifications.services.consent import unsubscribe_url
from notifications.services.sending import (
    InvalidRecipient,
    consents,
    email_outcome_record,
    recipient_address,
)
from notifications.services.suppression import suppression_add

logger = logging.getLogger("notifications.services")

# A claim this old belongs to an attempt that is over: none outlives the actor's 2-minute
# time limit. (A claim of a dead worker, or of this same message, is taken over at once.)
SENDING_STALE_AFTER = timedelta(minutes=2, seconds=30)
# An email the provider accepted but whose row could not say so (the database went away)
# is noted in Redis this long, so the next attempt records it instead of sending it again.
SENT_MARK_TTL_SECONDS = 7 * 24 * 3600

# Email rows this process is sending right now (a claim of ours that is not among them is
# an attempt of ours that ended without recording its outcome).
_sending_here: set[int] = set()
_sending_lock = threading.Lock()


def _sent_mark_key(email_log_id: int) -> str:
    return key("email", "sent", email_log_id)


class EmailDeliveryError(Exception):
    """The email was not sent this time; the job retries. Says what failed by exception
    types and HTTP status (the cause chain), never the provider's text (it may quote the
    address)."""


@lru_cache(maxsize=4)
def _sender_domain(from_email: str) -> str:
    # Parsed once per setting value: parseaddr costs ~120 µs, more than the rest of the id.
    return parseaddr(from_email)[1].rpartition("@")[2] or "jobsite.local"


def email_message_id(log: EmailLog) -> str:
    """The ``Message-ID`` of ``log``'s email: the same on every attempt, not guessable."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"email-log:{log.pk}".encode(),
                      hashlib.sha256).hexdigest()[:20]
    return f"<email-{log.pk}.{digest}@{_sender_domain(settings.DEFAULT_FROM_EMAIL)}>"


def _build_message(log: EmailLog, address: str) -> EmailMultiAlternatives:
    spec = KINDS[log.kind]
    link = "" if spec.transactional else unsubscribe_url(log.preference)
    rendered = render_email(kind=log.kind, user=log.user, context=log.context,
                            unsubscribe_url=link)
    message = EmailMultiAlternatives(
        subject=rendered.subject, body=rendered.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address], headers={**rendered.headers, "Message-ID": email_message_id(log)},
    )
    message.attach_alternative(rendered.html, "text/html")
    for attachment in email_attachments(log.kind, log.context, log.language):
        message.attach(attachment.filename, attachment.content, attachment.mimetype)
    # anymail's extras; Django's own backends ignore them.
    message.tags = [log.kind]
    message.metadata = {"email_log_id": str(log.pk)}
    return message


def _worker_id() -> str:
    return getattr(dramatiq.get_broker(), "broker_id", "") or ""


def _worker_alive(broker_id: str) -> bool:
    beat = get_redis().zscore(f"{dramatiq.get_broker().namespace}:__heartbeats__", broker_id)
    return beat is not None and beat >= time.time() * 1000 - heartbeat_timeout_ms()


def _claim(email_log_id: int, message_id: str) -> EmailLog | None:
    """Claim the row (see ``sql.email_log_claim``), or take over a claim whose attempt is
    over: one of this process's that is not sending now, or a dead worker's."""
    worker = _worker_id()
    stale = timezone.now() - SENDING_STALE_AFTER
    log = sql.email_log_claim(email_log_id, message_id=message_id, stale_before=stale,
                              worker=worker)
    if log is not None:
        return log
    current = (EmailLog.objects.filter(pk=email_log_id, status=EmailStatus.SENDING)
               .values_list("claimed_by", flat=True).first())
    if not current:
        return None
    with _sending_lock:
        ours_idle = current == worker and email_log_id not in _sending_here
    if ours_idle or (current != worker and not _worker_alive(current)):
        return sql.email_log_claim(email_log_id, message_id=message_id, stale_before=stale,
                                   worker=worker, takeover=current)
    return None


def email_deliver(*, email_log_id: int, final_attempt: bool = False,
                  message_id: str = "") -> EmailLog | None:
    """Render and send the email of log row ``email_log_id`` (the actor's one service).

    A claim whose attempt is over (stale, of this same message, of a dead worker, or one of
    this process's that ended without an outcome) is taken over; a claim another live
    delivery holds makes this one retry later. A row that is sent, given up on or deleted is
    left alone. A re-attempt first looks for the note an attempt leaves when the provider
    accepted the email but the row could not be updated, and records that instead of
    sending again. ``final_attempt`` marks the row ``failed`` if this attempt fails.

    Raises:
      PermanentError: the provider refused the recipient or the request; the row says
        ``rejected``. Not retried.
      EmailDeliveryError: a transient failure (5xx, 429, network), or another delivery is
        sending this email right now; retried.
    """
    log = _claim(email_log_id, message_id)
    if log is None:
        current = EmailLog.objects.filter(pk=email_log_id).first()
        if current is not None and current.status == EmailStatus.SENDING:
            # Another live delivery holds the claim (a duplicate of this work). Retry
            # later: by then it is sent, or its claim is over and this one takes over.
            raise EmailDeliveryError(f"Email #{email_log_id} is being sent by another worker.")
        return current  # sent, given up on, or deleted: nothing to do
    with _sending_lock:
        _sending_here.add(log.pk)
    try:
        if log.attempts > 1 and _record_if_already_sent(log):
            return log
        error = _deliver_claimed(log, final_attempt=final_attempt)
    except BaseException as exc:
        # Anything unforeseen (a template bug, the time limit, a database blip) must not
        # strand the row in "sending": give it back to the retry, or fail it on the last.
        log.last_error = type(exc).__name__
        email_outcome_record(log, EmailStatus.FAILED if final_attempt else EmailStatus.QUEUED)
        raise
    finally:
        with _sending_lock:
            _sending_here.discard(log.pk)
    if error is not None:
        raise error from None
    return log


def _record_if_already_sent(log: EmailLog) -> bool:
    """A previous attempt's note that the provider accepted this email: record it sent."""
    client = get_redis()
    noted = client.get(_sent_mark_key(log.pk))
    if noted is None:
        return False
    log.esp_message_id = noted.decode()
    log.sent_at = timezone.now()
    email_outcome_record(log, EmailStatus.SENT)
    client.delete(_sent_mark_key(log.pk))
    logger.info("email already sent: recorded, not sent again",
                extra={"email_log_id": log.pk, "kind": log.kind})
    return True


def _deliver_claimed(log: EmailLog, *, final_attempt: bool) -> Exception | None:
    """Send ``log``'s email (its row is claimed); returns the error to raise, if any."""
    try:
        address = recipient_address(log.user)
    except InvalidRecipient:
        log.last_error = "InvalidRecipient"
        email_outcome_record(log, EmailStatus.REJECTED)
        return PermanentError(f"Email #{log.pk}: the user's address is not valid.")
    spec = KINDS[log.kind]
    if log.suppressed:
        email_outcome_record(log, EmailStatus.SUPPRESSED)
        return None
    if not spec.transactional and not consents(log.preference, spec.category):
        email_outcome_record(log, EmailStatus.OPTED_OUT)
        return None
    try:
        esp_message_id = esp.send(_build_message(log, address))
    except EmailContentError:
        log.last_error = "EmailContentError"
        email_outcome_record(log, EmailStatus.FAILED)
        return PermanentError(f"Email #{log.pk} could not be rendered safely.")
    except esp.EmailSendError as exc:
        log.last_error = exc.description[:200]
        if exc.permanent:
            if exc.recipient_refused:
                suppression_add(email=address, reason=SuppressionReason.REJECTED, source="esp")
            email_outcome_record(log, EmailStatus.REJECTED)
            return PermanentError(
                f"Email #{log.pk}: refused ({exc.description}); not retried.")
        # Back to queued so the retry can claim it; failed when no retry is left.
        email_outcome_record(log, EmailStatus.FAILED if final_attempt else EmailStatus.QUEUED)
        return EmailDeliveryError(
            f"Email #{log.pk}: not sent ({exc.description}); attempt {log.attempts}.")
    log.sent_at = timezone.now()
    log.esp_message_id = esp_message_id
    try:
        email_outcome_record(log, EmailStatus.SENT)
    except BaseException:
        # Sent, but the row cannot say so: note it where the next attempt will look, so
        # that attempt records it instead of sending the email a second time.
        try:
            get_redis().set(_sent_mark_key(log.pk), esp_message_id, ex=SENT_MARK_TTL_SECONDS)
        except Exception:
            logger.error("email sent but neither its row nor Redis could record it",
                         extra={"email_log_id": log.pk})
        raise
    return None


# --- The platform's hooks (jobs.stateful) ----------------------------------------------------


def emails_unfinished(cutoff: datetime, limit: int) -> Iterator[Unfinished]:
    """Emails queued or sending, last changed before ``cutoff``, oldest first: the rows the
    platform re-drives when their message is not in Redis."""
    rows = (EmailLog.objects.filter(status__in=[EmailStatus.QUEUED, EmailStatus.SENDING],
                                    updated_at__lt=cutoff)
            .order_by("pk").values_list("pk", "message_id")[:limit])
    for pk, message_id in rows:
        if not message_id:  # queued before rows knew their message: give it one
            message_id = str(uuid4())
            EmailLog.objects.filter(pk=pk, message_id="").update(message_id=message_id)
        yield Unfinished(message_id=message_id, args=(pk,), kwargs={})


def email_retry_prepare(email_log_id: int) -> bool:
    """Staff retry a failed email: the row goes back to ``queued`` (its attempts and their
    story stay), so the retried job sends it. False when it is not failed or rejected."""
    return bool(EmailLog.objects.filter(
        pk=email_log_id, status__in=[EmailStatus.FAILED, EmailStatus.REJECTED],
    ).update(status=EmailStatus.QUEUED, last_error="", claimed_by="",
             updated_at=timezone.now()))
