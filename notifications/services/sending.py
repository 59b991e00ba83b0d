"""Sending email: :func:`send_email`, called by any app, records the email and enqueues
``send_email_task`` on the ``emails`` queue after commit. Logs and job payloads carry
ids, kinds and statuses only."""

import logging
from typing import Any
from uuid import uuid4

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from jobs.enqueue import enqueue_on_commit
from jobs.ratelimit import RateLimit, RateLimitExceeded, rate_limit_hit
from marketplace.models import User
from notifications.kinds import KINDS, Category, EmailContentError, clean_context
from notifications.metrics import EMAIL_OUTCOMES, EMAILS_RATE_LIMITED
from notifications.models import EmailKind, EmailLog, EmailPreference, EmailStatus
from notifications.rendering import recipient_language
from notifications.services import sql

logger = logging.getLogger("notifications.services")

# Seed security requirement: at most 50 emails per user per hour.
EMAIL_RATE_LIMIT = RateLimit(purpose="email", limit=50, period_seconds=3600)


class InvalidRecipient(EmailContentError):
    """The user has no deliverable address; nothing was recorded or enqueued."""


def recipient_address(user: User) -> str:
    """The user's address, if it is one. Raises :class:`InvalidRecipient`."""
    address = (user.email or "").strip()
    try:
        validate_email(address)
    except ValidationError:
        raise InvalidRecipient(f"User #{user.pk} has no valid email address.") from None
    return address


def consents(preference: EmailPreference, category: Category) -> bool:
    """Whether the user accepts email of ``category`` (transactional email always goes)."""
    if category == Category.MARKETING:
        return preference.marketing
    if category == Category.DIGEST:
        return preference.digest
    return True


def email_outcome_record(log: EmailLog, status: EmailStatus) -> EmailLog:
    """Record ``log``'s outcome: a new row is inserted, a claimed one updated (one plain
    UPDATE: the delivery hot path)."""
    log.status = status
    if log.pk is None:
        log.save()
    else:
        sql.email_log_finish(log)
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
    found = sql.recipient(user_id)
    if found is None:
        raise EmailContentError(f"No active user #{user_id}.")
    user = found.user
    recipient_address(user)
    spec = KINDS[kind]
    log = EmailLog(kind=kind, user=user, context=cleaned, language=recipient_language(user))
    if not spec.transactional and not consents(found.preference, spec.category):
        return email_outcome_record(log, EmailStatus.OPTED_OUT)
    if found.suppressed:
        return email_outcome_record(log, EmailStatus.SUPPRESSED)
    try:
        rate_limit_hit(EMAIL_RATE_LIMIT, user.pk)
    except RateLimitExceeded:
        EMAILS_RATE_LIMITED.labels(kind).inc()
        return email_outcome_record(log, EmailStatus.RATE_LIMITED)
    from notifications.tasks import send_email_task

    # savepoint=False: inside a caller's transaction this adds no SAVEPOINT round trips;
    # the row and the message still commit (or roll back) together.
    with transaction.atomic(savepoint=False):
        # The row knows its message from the start (jobs.stateful): if the message never
        # reaches Redis, or Redis loses it, the platform finds the row and sends it again.
        log.message_id = str(uuid4())
        sql.email_log_insert_queued(log)
        enqueue_on_commit(send_email_task, log.pk, _message_id=log.message_id)
    logger.debug("email queued", extra={"email_log_id": log.pk, "kind": kind})
    return log
