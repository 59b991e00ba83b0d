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
from datetime import timedelta
from email.utils import parseaddr

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from jobs.queues import PermanentError
from notifications import esp
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

# A claim this old belongs to a worker that died mid-send: an attempt cannot outlive the
# actor's 2-minute time limit. The retries of a redelivered message span longer than this.
SENDING_STALE_AFTER = timedelta(minutes=3)


class EmailDeliveryError(Exception):
    """The email was not sent this time; the job retries. Says what failed by exception
    types and HTTP status (the cause chain), never the provider's text (it may quote the
    address)."""


def email_message_id(log: EmailLog) -> str:
    """The ``Message-ID`` of ``log``'s email: the same on every attempt, not guessable."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"email-log:{log.pk}".encode(),
                      hashlib.sha256).hexdigest()[:20]
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "jobsite.local"
    return f"<email-{log.pk}.{digest}@{domain}>"


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
    # anymail's extras; Django's own backends ignore them.
    message.tags = [log.kind]
    message.metadata = {"email_log_id": str(log.pk)}
    return message


def email_deliver(*, email_log_id: int, final_attempt: bool = False,
                  message_id: str = "") -> EmailLog | None:
    """Render and send the email of log row ``email_log_id`` (the actor's one service).

    A claim older than the actor's time limit is stale (its worker died) and is taken
    over; a fresh claim held by another delivery makes this one retry later. A row that is
    sent, given up on or deleted is left alone. ``final_attempt`` marks the row
    ``failed`` if this attempt fails.

    Raises:
      PermanentError: the provider refused the recipient or the request; the row says
        ``rejected``. Not retried.
      EmailDeliveryError: a transient failure (5xx, 429, network), or another delivery is
        sending this email right now; retried.
    """
    log = sql.email_log_claim(email_log_id, message_id=message_id,
                              stale_before=timezone.now() - SENDING_STALE_AFTER)
    if log is None:
        current = EmailLog.objects.filter(pk=email_log_id).first()
        if current is not None and current.status == EmailStatus.SENDING:
            # Another delivery holds a fresh claim (e.g. the broker redelivered the message
            # of a worker that stopped heartbeating). Retry later: by then it is sent, or
            # the claim is stale and this delivery takes over. Never drop it here.
            raise EmailDeliveryError(f"Email #{email_log_id} is being sent by another worker.")
        return current  # sent, given up on, or deleted: nothing to do
    try:
        error = _deliver_claimed(log, final_attempt=final_attempt)
    except BaseException as exc:
        # Anything unforeseen (a template bug, the time limit, a database blip) must not
        # strand the row in "sending": give it back to the retry, or fail it on the last.
        log.last_error = type(exc).__name__
        email_outcome_record(log, EmailStatus.FAILED if final_attempt else EmailStatus.QUEUED)
        raise
    if error is not None:
        raise error from None
    return log


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
    email_outcome_record(log, EmailStatus.SENT)
    return None
