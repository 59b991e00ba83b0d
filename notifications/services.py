"""Writes of the notifications app: send email, deliver it, consent, suppression, digest.

Email flows in two steps. :func:`send_email` (called by any app) checks the input and the
limits, records an :class:`EmailLog` row and enqueues ``send_email_task`` on the
``emails`` queue after commit. The actor calls :func:`email_deliver`, which renders the
email in the recipient's language and sends it through anymail. Logs and job payloads
carry ids, kinds and statuses only.
"""

import json
import logging
import threading
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from anymail.exceptions import AnymailAPIError, AnymailError, AnymailRecipientsRefused
from anymail.signals import AnymailTrackingEvent, EventType
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.signals import setting_changed
from django.core.validators import validate_email
from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q
from django.urls import reverse
from django.utils import timezone

from jobs.enqueue import enqueue_on_commit
from jobs.queues import PermanentError
from jobs.ratelimit import RateLimit, RateLimitExceeded, rate_limit_hit
from marketplace.models import User
from marketplace.services import audit_log_record
from notifications import tokens
from notifications.kinds import KINDS, Category, EmailContentError, clean_context
from notifications.metrics import EMAIL_OUTCOMES, EMAILS_RATE_LIMITED
from notifications.models import (
    EmailKind,
    EmailLog,
    EmailPreference,
    EmailStatus,
    Notification,
    Suppression,
    SuppressionReason,
)
from notifications.rendering import recipient_language, render_email

logger = logging.getLogger(__name__)

# Seed security requirement: at most 50 emails per user per hour.
EMAIL_RATE_LIMIT = RateLimit(purpose="email", limit=50, period_seconds=3600)
DIGEST_MAX_ITEMS = 20
DIGEST_CHUNK = 500
DIGEST_REPEAT = timedelta(hours=20)
# A claim this old belongs to a worker that died mid-send: an attempt cannot outlive the
# actor's 2-minute time limit. The retries of a redelivered message span longer than this.
SENDING_STALE_AFTER = timedelta(minutes=3)


class InvalidRecipient(EmailContentError):
    """The user has no deliverable address; nothing was recorded or enqueued."""


class EmailDeliveryError(Exception):
    """The ESP failed transiently; the job retries. Carries no ESP text (it may quote
    the address), only the error class and HTTP status."""


def _recipient_address(user: User) -> str:
    address = (user.email or "").strip()
    try:
        validate_email(address)
    except ValidationError:
        raise InvalidRecipient(f"User #{user.pk} has no valid email address.") from None
    return address


def _consents(preference: EmailPreference, category: Category) -> bool:
    if category == Category.MARKETING:
        return preference.marketing
    if category == Category.DIGEST:
        return preference.digest
    return True


def unsubscribe_url(preference: EmailPreference) -> str:
    token = tokens.unsubscribe_token(preference.user_id, preference.unsubscribe_nonce)
    path = reverse("notifications:unsubscribe", kwargs={"token": token})
    return settings.SITE_URL.rstrip("/") + path


_FINISH_SQL = ("UPDATE {log} SET status = %s, last_error = %s, sent_at = %s, "
               "esp_message_id = %s, updated_at = %s WHERE id = %s")


@dataclass(frozen=True)
class _Recipient:
    user: User
    preference: EmailPreference  # an unsaved default (opted in) when the user has none
    suppressed: bool


# send_email's checks in one plain SELECT (the ORM's compile of the same query cost
# more CPU than the rest of send_email; see README "Performance").
_RECIPIENT_SQL = """
SELECT u.id, u.email, u.first_name, u.preferred_language,
       p.id, p.marketing, p.digest, p.unsubscribe_nonce,
       EXISTS (SELECT 1 FROM {suppression} s WHERE s.email = lower(u.email))
  FROM {user} u LEFT JOIN {preference} p ON p.user_id = u.id
 WHERE u.id = %s AND u.is_active
"""


def _recipient(user_id: int) -> _Recipient | None:
    """The active user ``user_id`` with their consent and suppression status."""
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        return None
    sql = _RECIPIENT_SQL.format(user=User._meta.db_table,
                                preference=EmailPreference._meta.db_table,
                                suppression=Suppression._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    (uid, email, first_name, language, pref_id, marketing, digest, nonce, suppressed) = row
    user = User(id=uid, email=email, first_name=first_name, preferred_language=language)
    user._state.adding = False
    return _Recipient(user=user, preference=_preference_of(user, pref_id, marketing, digest,
                                                            nonce), suppressed=suppressed)


def _preference_of(user: User, pref_id: int | None, marketing: bool | None,
                   digest: bool | None, nonce: int | None) -> EmailPreference:
    if pref_id is None:
        return EmailPreference(user=user)  # never chose: opted in
    return EmailPreference(id=pref_id, user=user, marketing=marketing, digest=digest,
                           unsubscribe_nonce=nonce)


_INSERT_SQL = """
INSERT INTO {log} (kind, user_id, status, context, language, message_id, esp_message_id,
                   attempts, last_error, created_at, updated_at)
VALUES (%s, %s, %s, %s::jsonb, %s, '', '', 0, '', %s, %s) RETURNING id
"""


def _insert_queued(log: EmailLog) -> None:
    """INSERT the queued row in one plain statement (the send_email hot path)."""
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_SQL.format(log=EmailLog._meta.db_table),
                       [log.kind, log.user_id, EmailStatus.QUEUED.value,
                        json.dumps(log.context), log.language, log.created_at,
                        log.created_at])
        log.pk = cursor.fetchone()[0]
    log.status = EmailStatus.QUEUED
    log._state.adding = False


def _finish(log: EmailLog, status: EmailStatus) -> EmailLog:
    """Record ``log``'s outcome: a new row is inserted, a claimed one updated (one plain
    UPDATE: the hot path, see ``_CLAIM_SQL``)."""
    log.status = status
    if log.pk is None:
        log.save()
    else:
        with connection.cursor() as cursor:
            cursor.execute(_FINISH_SQL.format(log=EmailLog._meta.db_table),
                           [status.value, log.last_error, log.sent_at, log.esp_message_id,
                            timezone.now(), log.pk])
    EMAIL_OUTCOMES.labels(log.kind, status).inc()
    # One line per email sent would be noise at thousands a minute; the rest are news.
    logger.log(logging.DEBUG if status == EmailStatus.SENT else logging.INFO, "email %s",
               status, extra={"email_log_id": log.pk, "kind": log.kind})
    return log


def send_email(*, kind: str, user_id: int, context: dict[str, Any] | None = None) -> EmailLog:
    """Record and enqueue one email of ``kind`` to user ``user_id``.

    Returns the :class:`EmailLog` row. Its status says what happened: ``queued`` (sent
    after commit), or, with nothing enqueued, ``opted_out`` (a non-transactional kind
    the user turned off), ``suppressed`` (the address bounced, complained or is
    blacklisted) or ``rate_limited`` (the user's 50 emails per hour are used up).

    Raises:
      EmailContentError: unknown kind, unknown user, bad or unsafe context (a line break
        in a header value). Nothing is recorded or enqueued.
      InvalidRecipient: the user's address is not valid. Nothing is recorded or enqueued.
    """
    try:
        kind = EmailKind(kind)
    except ValueError:
        raise EmailContentError(f"Unknown email kind {kind!r}.") from None
    cleaned = clean_context(kind, context)
    recipient = _recipient(user_id)
    if recipient is None:
        raise EmailContentError(f"No active user #{user_id}.")
    user = recipient.user
    _recipient_address(user)
    spec = KINDS[kind]
    log = EmailLog(kind=kind, user=user, context=cleaned, language=recipient_language(user))
    if not spec.transactional and not _consents(recipient.preference, spec.category):
        return _finish(log, EmailStatus.OPTED_OUT)
    if recipient.suppressed:
        return _finish(log, EmailStatus.SUPPRESSED)
    try:
        rate_limit_hit(EMAIL_RATE_LIMIT, user.pk)
    except RateLimitExceeded:
        EMAILS_RATE_LIMITED.labels(kind).inc()
        return _finish(log, EmailStatus.RATE_LIMITED)
    from notifications.tasks import send_email_task

    # savepoint=False: inside a caller's transaction this adds no SAVEPOINT round trips;
    # the row and the message still commit (or roll back) together.
    with transaction.atomic(savepoint=False):
        _insert_queued(log)
        # The worker records the message id when it claims the row (no second write here).
        enqueue_on_commit(send_email_task, log.pk)
    logger.debug("email queued", extra={"email_log_id": log.pk, "kind": kind})
    return log


# One open ESP connection (anymail backend) per worker thread, reused for every email it
# sends: an HTTP ESP keeps its keep-alive session (no new TLS handshake per email), and no
# backend is built per email (~0.3 ms of CPU each, measured with the test backend).
_esp = threading.local()
_esp_generation = [0]  # bumped when email settings change (tests' override_settings)


def _esp_connection():
    """This thread's open ESP connection, made on first use."""
    connection = getattr(_esp, "connection", None)
    if connection is None or _esp.generation != _esp_generation[0]:
        _esp_connection_drop()
        connection = get_connection()
        connection.open()
        _esp.connection, _esp.generation = connection, _esp_generation[0]
    return connection


def _esp_connection_drop() -> None:
    """Close this thread's ESP connection (after an ESP error, the next email opens anew)."""
    connection = getattr(_esp, "connection", None)
    _esp.connection = None
    if connection is not None:
        try:
            connection.close()
        except Exception:  # already broken: dropping it is all that is left to do
            logger.debug("ESP connection close failed", exc_info=True)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith(("EMAIL_", "ANYMAIL", "POSTMARK", "SENDGRID", "MAILGUN", "AWS_SES")):
        _esp_generation[0] += 1


setting_changed.connect(_on_setting_changed)


def _build_message(log: EmailLog, address: str) -> EmailMultiAlternatives:
    spec = KINDS[log.kind]
    link = "" if spec.transactional else unsubscribe_url(log.preference)
    rendered = render_email(kind=log.kind, user=log.user, context=log.context,
                            unsubscribe_url=link)
    message = EmailMultiAlternatives(
        subject=rendered.subject, body=rendered.text, from_email=settings.DEFAULT_FROM_EMAIL,
        to=[address], headers=rendered.headers, connection=_esp_connection(),
    )
    message.attach_alternative(rendered.html, "text/html")
    message.tags = [log.kind]
    message.metadata = {"email_log_id": str(log.pk)}
    return message


def _is_permanent(exc: AnymailError) -> bool:
    """4xx from the ESP (except 429, too many requests) means retrying cannot help."""
    if isinstance(exc, AnymailRecipientsRefused):
        return True
    status = getattr(exc, "status_code", None)
    return isinstance(exc, AnymailAPIError) and status is not None and (
        400 <= status < 500 and status != 429
    )


def email_deliver(*, email_log_id: int, final_attempt: bool = False,
                  message_id: str = "") -> EmailLog | None:
    """Render and send the email of log row ``email_log_id`` (the actor's one service).

    The row is claimed first (``queued`` → ``sending``, a conditional UPDATE), so two
    deliveries of the same message never both send, and no row lock or transaction is
    held while the ESP answers. A claim older than the actor's time limit is stale (its
    worker died) and is taken over; a fresh claim held by another delivery makes this one
    retry later. A row that is sent, given up on or deleted is left alone.
    ``final_attempt`` marks the row ``failed`` if this attempt fails.

    Raises:
      PermanentError: the ESP refused the recipient or the request (4xx); the row says
        ``rejected``. Not retried.
      EmailDeliveryError: a transient ESP failure (5xx, 429, network), or another
        delivery is sending this email right now; retried.
    """
    log = _claim(email_log_id, message_id=message_id)
    if log is None:
        current = EmailLog.objects.filter(pk=email_log_id).first()
        if current is not None and current.status == EmailStatus.SENDING:
            # Another delivery holds a fresh claim (e.g. the broker redelivered the message
            # of a worker that stopped heartbeating). Retry later: by then it is sent, or
            # the claim is stale and this delivery takes over. Never drop it here.
            raise EmailDeliveryError(f"Email #{email_log_id} is being sent by another worker.")
        # Sent, given up on, or deleted: nothing to do.
        return current
    error = _deliver_claimed(log, final_attempt=final_attempt)
    if error is not None:
        # ``from None``: the ESP's own exception text may quote the address and must not
        # reach logs or Redis.
        raise error from None
    return log


# The delivery hot path in one round trip: claim the row (queued → sending) and read
# what rendering needs (the user, their consent, whether the address is suppressed).
# Plain SQL because building this query through the ORM cost more CPU than rendering
# and sending the email (profiled with cProfile/py-spy; see README "Performance").
_CLAIM_SQL = """
WITH claimed AS (
    UPDATE {log} SET status = %(sending)s, attempts = attempts + 1,
           last_attempt_at = %(now)s, updated_at = %(now)s,
           message_id = CASE WHEN %(message_id)s = '' THEN message_id ELSE %(message_id)s END
     WHERE id = %(id)s AND (status = %(queued)s
           OR (status = %(sending)s AND last_attempt_at < %(stale)s))
    RETURNING id, kind, context, language, attempts, message_id, created_at, user_id,
              last_error
)
SELECT c.id, c.kind, c.context, c.language, c.attempts, c.message_id, c.created_at,
       c.last_error,
       u.id, u.email, u.first_name, u.last_name, u.preferred_language, u.password,
       u.last_login, p.id, p.marketing, p.digest, p.unsubscribe_nonce,
       EXISTS (SELECT 1 FROM {suppression} s WHERE s.email = lower(u.email))
  FROM claimed c
  JOIN {user} u ON u.id = c.user_id
  LEFT JOIN {preference} p ON p.user_id = c.user_id
"""


def _claim(email_log_id: int, *, message_id: str = "") -> EmailLog | None:
    """Claim a queued (or stale ``sending``) row; ``None`` when it is not claimable.

    Returns the row with its ``user``, and ``preference`` and ``suppressed`` attributes.
    """
    now = timezone.now()
    sql = _CLAIM_SQL.format(
        log=EmailLog._meta.db_table, user=User._meta.db_table,
        preference=EmailPreference._meta.db_table, suppression=Suppression._meta.db_table,
    )
    params = {"sending": EmailStatus.SENDING.value, "queued": EmailStatus.QUEUED.value,
              "now": now, "stale": now - SENDING_STALE_AFTER, "message_id": message_id,
              "id": email_log_id}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    if row is None:
        return None
    (log_id, kind, context, language, attempts, msg_id, created_at, last_error, user_id, email,
     first_name, last_name, preferred_language, password, last_login, pref_id, marketing,
     digest, nonce, suppressed) = row
    user = User(id=user_id, email=email, first_name=first_name, last_name=last_name,
                preferred_language=preferred_language, password=password,
                last_login=last_login)
    log = EmailLog(
        id=log_id, kind=kind, user=user, status=EmailStatus.SENDING,
        context=json.loads(context) if isinstance(context, str) else context,
        language=language, attempts=attempts, message_id=msg_id, created_at=created_at,
        last_attempt_at=now, last_error=last_error,
    )
    log._state.adding = False
    log.preference = _preference_of(user, pref_id, marketing, digest, nonce)
    log.suppressed = suppressed
    return log


def _deliver_claimed(log: EmailLog, *, final_attempt: bool) -> Exception | None:
    """Send ``log``'s email (its row is claimed); returns the error to raise, if any."""
    try:
        address = _recipient_address(log.user)
    except InvalidRecipient:
        log.last_error = "InvalidRecipient"
        _finish(log, EmailStatus.REJECTED)
        return PermanentError(f"Email #{log.pk}: the user's address is not valid.")
    spec = KINDS[log.kind]
    if log.suppressed:
        _finish(log, EmailStatus.SUPPRESSED)
        return None
    if not spec.transactional and not _consents(log.preference, spec.category):
        _finish(log, EmailStatus.OPTED_OUT)
        return None
    try:
        message = _build_message(log, address)
        message.send()
    except EmailContentError:
        log.last_error = "EmailContentError"
        _finish(log, EmailStatus.FAILED)
        return PermanentError(f"Email #{log.pk} could not be rendered safely.")
    except AnymailError as exc:
        _esp_connection_drop()
        status_code = getattr(exc, "status_code", None)
        log.last_error = type(exc).__name__ + (f" (HTTP {status_code})" if status_code else "")
        if _is_permanent(exc):
            if isinstance(exc, AnymailRecipientsRefused):
                suppression_add(email=address, reason=SuppressionReason.REJECTED, source="esp")
            _finish(log, EmailStatus.REJECTED)
            return PermanentError(
                f"Email #{log.pk}: the ESP refused it ({log.last_error}); not retried."
            )
        # Back to queued so the retry can claim it; failed when no retry is left.
        _finish(log, EmailStatus.FAILED if final_attempt else EmailStatus.QUEUED)
        return EmailDeliveryError(
            f"Email #{log.pk}: ESP error {log.last_error}; attempt {log.attempts}."
        )
    log.sent_at = timezone.now()
    esp_id = message.anymail_status.message_id
    log.esp_message_id = "" if esp_id is None else str(esp_id)[:255]
    _finish(log, EmailStatus.SENT)
    return None


# --- Consent -----------------------------------------------------------------------------


def email_preference_update(*, user: User, marketing: bool | None = None,
                            digest: bool | None = None, via: str) -> EmailPreference:
    """Change a user's email consent and record the change in the audit log."""
    with transaction.atomic():
        preference, _ = EmailPreference.objects.select_for_update().get_or_create(user=user)
        changes = {}
        if marketing is not None and marketing != preference.marketing:
            preference.marketing = changes["marketing"] = marketing
        if digest is not None and digest != preference.digest:
            preference.digest = changes["digest"] = digest
        if changes:
            preference.save()
            audit_log_record(action="email.consent_changed", resource_type="user",
                             resource_id=user.pk, actor=user, metadata={**changes, "via": via})
    return preference


def email_unsubscribe(*, token: str) -> EmailPreference:
    """Turn off marketing and digest email for the user of a one-click unsubscribe link.

    Each link works once: the preference's nonce moves on, so the same token is refused
    the second time.

    Raises:
      tokens.InvalidToken: the token is forged, malformed or already used.
    """
    user_id, nonce = tokens.unsubscribe_token_data(token)
    with transaction.atomic():
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            raise tokens.InvalidToken("The unsubscribe link is invalid.")
        preference, _ = EmailPreference.objects.select_for_update().get_or_create(user=user)
        if preference.unsubscribe_nonce != nonce:
            raise tokens.InvalidToken("The unsubscribe link was already used.")
        preference.unsubscribe_nonce += 1
        preference.save(update_fields=["unsubscribe_nonce", "updated_at"])
        return email_preference_update(user=user, marketing=False, digest=False,
                                       via="unsubscribe_link")


# --- Account links -----------------------------------------------------------------------


def email_verify(*, token: str) -> User:
    """Mark the address of the user a verification link was sent to as verified.

    Idempotent: a second use of a valid link keeps the first ``email_verified_at`` and
    records nothing more. The address is checked again under the row lock, so a link
    made for an address the user has just changed cannot verify the new one.

    Raises:
      tokens.InvalidToken: the token is malformed, tampered with, expired, or was made
        for an address the user no longer has.
    """
    with transaction.atomic():
        checked = tokens.email_verification_user(token)
        user = User.objects.select_for_update().filter(pk=checked.pk,
                                                       email=checked.email).first()
        if user is None:
            raise tokens.InvalidToken("The verification link is invalid or has expired.")
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            audit_log_record(action="auth.email_verified", resource_type="user",
                             resource_id=user.pk, actor=user,
                             metadata={"via": "verification_link"})
    return user


# --- Suppression list ----------------------------------------------------------------------


def suppression_add(*, email: str, reason: SuppressionReason, source: str,
                    created_by: User | None = None) -> Suppression:
    """Never send to ``email`` again. Idempotent: an existing entry is kept as it is."""
    suppression, created = Suppression.objects.get_or_create(
        email=email.strip().lower(),
        defaults={"reason": reason, "source": source, "created_by": created_by},
    )
    if created:
        audit_log_record(action="email.suppression_added", resource_type="suppression",
                         resource_id=suppression.pk, actor=created_by,
                         metadata={"reason": reason, "source": source})
    return suppression


def suppression_remove(*, suppression: Suppression, removed_by: User | None = None) -> None:
    audit_log_record(action="email.suppression_removed", resource_type="suppression",
                     resource_id=suppression.pk, actor=removed_by,
                     metadata={"reason": suppression.reason})
    suppression.delete()


_SUPPRESSING_EVENTS = {
    EventType.BOUNCED: SuppressionReason.HARD_BOUNCE,
    EventType.COMPLAINED: SuppressionReason.COMPLAINT,
    EventType.REJECTED: SuppressionReason.REJECTED,
}


def _is_soft_bounce(event: AnymailTrackingEvent) -> bool:
    """A bounce that may succeed later: anymail reports these as "bounced" too, so the
    ESP's own bounce type decides."""
    if event.event_type != EventType.BOUNCED or not isinstance(event.esp_event, dict):
        return False
    esp = event.esp_event
    bounce = esp.get("bounce") if isinstance(esp.get("bounce"), dict) else {}
    return (
        esp.get("Type") == "SoftBounce"  # Postmark
        or esp.get("type") == "blocked"  # SendGrid
        or bounce.get("bounceType") in ("Transient", "Undetermined")  # Amazon SES
    )


def email_tracking_event_record(*, event: AnymailTrackingEvent, esp_name: str) -> bool:
    """Apply one ESP tracking event; hard bounces and complaints suppress the address.

    Returns whether the address was suppressed. Soft bounces and engagement events
    (opens, clicks, deliveries) change nothing.
    """
    reason = _SUPPRESSING_EVENTS.get(event.event_type)
    if reason is None or _is_soft_bounce(event) or not event.recipient:
        return False
    with transaction.atomic():
        suppression_add(email=event.recipient, reason=reason,
                        source=esp_name.lower().replace(" ", "_"))
        if event.message_id:
            status = (EmailStatus.COMPLAINED if event.event_type == EventType.COMPLAINED
                      else EmailStatus.BOUNCED)
            EmailLog.objects.filter(
                esp_message_id=str(event.message_id), status=EmailStatus.SENT
            ).update(status=status, last_error=f"{esp_name}: {event.event_type}"[:200])
    logger.info("email address suppressed",
                extra={"esp": esp_name, "event": event.event_type, "reason": reason})
    return True


# --- In-app notifications and the daily digest ----------------------------------------


def notification_create(*, user: User, kind: str, title: str, body: str = "",
                        is_important: bool = False) -> Notification:
    return Notification.objects.create(user=user, kind=kind, title=title[:200], body=body,
                                       is_important=is_important)


def daily_digest_send(*, now: Any = None) -> int:
    """Send one digest to each opted-in user with unread notifications of the last day.

    Users with none get nothing, nor do users who already got one in the last 20 hours
    (so a repeated run is harmless). Walks users in chunks of ids. Returns how many
    digests were queued.
    """
    now = now or timezone.now()
    since = now - timedelta(days=1)
    recent_unread = Q(notifications__is_read=False, notifications__created_at__gte=since)
    opted_out = EmailPreference.objects.filter(user=OuterRef("pk"), digest=False)
    # A run repeated the same day (a retry, a manual run) does not send a second digest.
    already = EmailLog.objects.filter(
        user=OuterRef("pk"), kind=EmailKind.DAILY_DIGEST, created_at__gte=now - DIGEST_REPEAT,
        status__in=[EmailStatus.QUEUED, EmailStatus.SENT],
    )
    users = (
        User.objects.filter(is_active=True)
        .exclude(Exists(opted_out))
        .exclude(Exists(already))
        .annotate(unread=Count("notifications", filter=recent_unread))
        .filter(unread__gt=0)
        .order_by("pk")
    )
    queued, last_id = 0, 0
    while True:
        chunk = list(users.filter(pk__gt=last_id).values_list("pk", "unread")[:DIGEST_CHUNK])
        if not chunk:
            return queued
        for user_id, unread in chunk:
            ids = list(
                Notification.objects.filter(user_id=user_id, is_read=False,
                                            created_at__gte=since)
                .order_by("-is_important", "-created_at")
                .values_list("pk", flat=True)[:DIGEST_MAX_ITEMS]
            )
            try:
                log = send_email(kind=EmailKind.DAILY_DIGEST, user_id=user_id,
                                 context={"notification_ids": ids, "unread_count": unread})
            except EmailContentError:
                logger.warning("digest skipped: no valid address", extra={"user_id": user_id})
                continue
            queued += log.status == EmailStatus.QUEUED
        last_id = chunk[-1][0]
