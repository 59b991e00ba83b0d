"""Push notifications: :func:`send_push` checks, records and enqueues one push;
``send_push_task`` calls :func:`push_deliver`, which sends it through OneSignal.

Never sent, with the record saying why: a kind the user turned off or push turned off
(``opted_out``), a promotion without explicit consent (``no_consent``), no active device
(``no_device``), the user's 20 pushes per hour used up (``rate_limited``). Non-urgent kinds
(review requests, promotions) that would reach a user in their quiet hours wait, in
Redis's delay queue, until those end in the user's own time zone. Every push also leaves
an in-app notification (the bell, and the daily digest), unless it is a promotion the user
did not consent to or was over the limit.
"""

import datetime
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, Protocol
from uuid import uuid4
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.utils import timezone
from dramatiq import Retry

from jobs.enqueue import enqueue_on_commit
from jobs.queues import PermanentError
from jobs.ratelimit import RateLimit, RateLimitExceeded, rate_limit_hit
from jobs.stateful import Unfinished
from marketplace.models import User
from notifications import onesignal
from notifications.metrics import PUSH_OUTCOMES, PUSHES_RATE_LIMITED
from notifications.models import (
    Notification,
    PushKind,
    PushLog,
    PushPreference,
    PushStatus,
)
from notifications.push_kinds import PUSH_KINDS, PushContentError, push_clean_context
from notifications.rendering import push_languages, recipient_language, render_push
from notifications.services import sql
from notifications.services.devices import devices_deactivate, subscription_id_decrypt

logger = logging.getLogger("notifications.services")

# Seed security requirement 12.3: at most 20 pushes per user per hour.
PUSH_RATE_LIMIT = RateLimit(purpose="push", limit=20, period_seconds=3600)
# A claim this old belongs to an attempt that is over (the actor's limit is 1 minute).
SENDING_STALE_AFTER = timedelta(minutes=1, seconds=30)


class PushDeliveryError(Exception):
    """OneSignal failed transiently (5xx, network); the job retries."""


# --- Quiet hours ---------------------------------------------------------------------------


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.BUSINESS_TIME_ZONE)


def quiet_hours_end(*, now: datetime.datetime, time_zone: str, start: datetime.time,
                    end: datetime.time) -> datetime.datetime | None:
    """When the user's quiet hours end, if ``now`` falls in them (else ``None``): the exact
    instant (UTC) of the first ``end`` on the user's wall clock after ``now``, correct
    across DST (08:00 is 12:00Z in Halifax in winter, 11:00Z in summer). ``start`` after
    ``end`` means the quiet hours span midnight (21:00–08:00)."""
    zone = _zone(time_zone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    quiet = (start <= clock or clock < end) if start > end else (start <= clock < end)
    if not quiet or start == end:
        return None
    day = local.date() if clock < end else local.date() + timedelta(days=1)
    # fold=0: a wall-clock time that does not exist (the spring gap) maps one hour on.
    release = datetime.datetime.combine(day, end).replace(tzinfo=zone, fold=0)
    return release.astimezone(datetime.UTC)


# --- Sending --------------------------------------------------------------------------------


def _record(log: PushLog, status: PushStatus, *, reason: str = "",
            in_app: Notification | None = None) -> PushLog:
    """Record ``log``'s outcome: a new row is inserted (with its ``in_app``
    notification, if any), a claimed one updated (one plain UPDATE: the delivery hot
    path)."""
    log.status, log.reason = status, reason[:200]
    if log.pk is None:
        sql.push_log_insert(log, in_app)
    else:
        sql.push_log_finish(log)
    PUSH_OUTCOMES.labels(log.kind, status).inc()
    logger.log(logging.DEBUG if status == PushStatus.SENT else logging.INFO, "push %s",
               status, extra={"push_log_id": log.pk, "kind": log.kind})
    return log


class PushRules(Protocol):
    """What the checks read of a user's preference (a :class:`PushPreference`, or the
    campaign planner's lighter tuple)."""

    enabled: bool
    opted_out_kinds: list[str]
    promotional_consent: bool


def not_sent_reason(*, kind: PushKind, preference: PushRules,
                    has_device: bool) -> PushStatus | None:
    """Why a push of ``kind`` may not go to a user with ``preference``, or ``None``."""
    if not preference.enabled or kind in preference.opted_out_kinds:
        return PushStatus.OPTED_OUT
    if PUSH_KINDS[kind].promotional and not preference.promotional_consent:
        return PushStatus.NO_CONSENT
    if not has_device:
        return PushStatus.NO_DEVICE
    return None


def send_push(*, kind: str, user_id: int, context: dict[str, Any] | None = None,
              device_id: int | None = None) -> PushLog:
    """Record and enqueue one push of ``kind`` to user ``user_id`` (all their devices, or
    one of them). Returns the :class:`PushLog`; its status says what happened.

    Raises:
      PushContentError: unknown kind or user, or a bad context; nothing is recorded.
    """
    try:
        kind = PushKind(kind)
    except ValueError:
        raise PushContentError(f"Unknown push kind {kind!r}.") from None
    cleaned = push_clean_context(kind, context)
    found = sql.push_recipient(user_id, device_id=device_id)
    if found is None:
        raise PushContentError(f"No active user #{user_id}.")
    user, preference = found.user, found.preference
    spec = PUSH_KINDS[kind]
    language = recipient_language(user)
    now = timezone.now()
    log = PushLog(kind=kind, user=user, context=cleaned, language=language,
                  device_id=device_id, created_at=now)
    reason = not_sent_reason(kind=kind, preference=preference, has_device=found.has_device)
    if reason is None:
        try:
            rate_limit_hit(PUSH_RATE_LIMIT, user.pk)
        except RateLimitExceeded:
            PUSHES_RATE_LIMITED.labels(kind).inc()
            reason = PushStatus.RATE_LIMITED
    in_app = None if reason in (PushStatus.NO_CONSENT, PushStatus.RATE_LIMITED) else (
        _in_app(user, kind, cleaned, language))
    if reason is not None:
        return _record(log, reason, reason=reason.label, in_app=in_app)
    log.send_at = None if spec.urgent else quiet_hours_end(
        now=now, time_zone=user.time_zone, start=preference.quiet_start,
        end=preference.quiet_end)
    # The row knows its message from the start (jobs.stateful). One statement, so no
    # transaction of its own: inside the caller's, the message goes at its commit.
    log.status, log.message_id = PushStatus.QUEUED, str(uuid4())
    sql.push_log_insert(log, in_app)
    delay = int((log.send_at - now).total_seconds() * 1000) if log.send_at else None
    from notifications.tasks import send_push_task

    enqueue_on_commit(send_push_task, log.pk, _message_id=log.message_id, _delay_ms=delay)
    PUSH_OUTCOMES.labels(kind, PushStatus.QUEUED).inc()
    return log


def _in_app(user: User, kind: PushKind, context: dict, language: str) -> Notification:
    """The in-app twin of a push (unsaved: it is inserted with the push's row)."""
    headings, contents = render_push(kind=kind, context=context,
                                     first_name=user.first_name, languages=(language,))
    return Notification(user_id=user.pk, kind=f"push:{kind}", title=headings[language],
                        body=contents[language], is_important=PUSH_KINDS[kind].urgent)


def push_deliver(*, push_log_id: int, final_attempt: bool = False, message_id: str = ""
                 ) -> PushLog | None:
    """Send the push of row ``push_log_id`` (the actor's one service), idempotently.

    The user's preferences and devices are checked again (they may have changed while the
    push waited for the end of quiet hours). OneSignal gets an idempotency key made from
    the row, so a retried request never notifies twice.

    Raises:
      PermanentError: OneSignal refused the request (4xx); the row says ``rejected``.
      PushDeliveryError: a transient failure (5xx, network); retried.
      dramatiq.Retry: OneSignal said 429; retried after its ``Retry-After``, no sooner.
    """
    claimed = sql.push_log_claim(push_log_id, message_id=message_id,
                                 stale_before=timezone.now() - SENDING_STALE_AFTER)
    if claimed is None:
        return PushLog.objects.filter(pk=push_log_id).first()
    log, preference, devices = claimed
    try:
        return _deliver_claimed(log, preference, devices, final_attempt=final_attempt)
    except (PermanentError, PushDeliveryError, Retry):
        raise
    except BaseException as exc:
        log.provider_id, log.sent_at = "", None
        _record(log, PushStatus.FAILED if final_attempt else PushStatus.QUEUED,
                reason=type(exc).__name__)
        raise


def _deliver_claimed(log: PushLog, preference: PushPreference, devices: list[str], *,
                     final_attempt: bool) -> PushLog:
    """Send a claimed row; ``devices`` are the encrypted subscription ids it may go to."""
    kind = PushKind(log.kind)
    reason = not_sent_reason(kind=kind, preference=preference, has_device=bool(devices))
    if reason is not None:
        return _record(log, reason, reason=f"{reason.label} (at send time)")
    headings, contents = _push_text(log)
    target: dict[str, Any] = (
        {"subscription_ids": [subscription_id_decrypt(d) for d in devices]}
        if log.device_id is not None else {"external_ids": [str(log.user_id)]})
    body = onesignal.notification_body(
        headings=headings, contents=contents, key=onesignal.idempotency_key(
            f"push-log:{log.pk}"),
        data={"kind": kind.value, **{name: log.context[name]
                                     for name in PUSH_KINDS[kind].data_fields}},
        **target)
    try:
        delivery = onesignal.send(body)
    except onesignal.OneSignalError as exc:
        if exc.permanent:
            _record(log, PushStatus.REJECTED, reason=exc.description)
            raise PermanentError(f"Push #{log.pk}: refused ({exc.description}).") from None
        _record(log, PushStatus.FAILED if final_attempt else PushStatus.QUEUED,
                reason=exc.description)
        if exc.retry_after is not None and not final_attempt:
            raise Retry(delay=int(exc.retry_after * 1000)) from None
        raise PushDeliveryError(f"Push #{log.pk}: not sent ({exc.description}).") from None
    _deactivate_invalid(delivery)
    if not delivery.sent:
        return _record(log, PushStatus.NOT_DELIVERED,
                       reason="; ".join(delivery.errors) or "no notification id")
    log.provider_id, log.sent_at = delivery.notification_id, timezone.now()
    return _record(log, PushStatus.SENT)


def _push_text(log: PushLog) -> tuple[dict[str, str], dict[str, str]]:
    """The push's headings and contents: in the reader's language, its in-app
    notification's text (the same rendering, done when the push was recorded); the other
    languages it carries rendered now."""
    languages = push_languages(log.language)
    in_app = log.notification if PushLog.notification.is_cached(log) else None
    known = {log.language: in_app} if in_app is not None else {}
    headings, contents = render_push(
        kind=log.kind, context=log.context, first_name=log.user.first_name,
        languages=tuple(language for language in languages if language not in known))
    for language, notification in known.items():
        headings[language], contents[language] = notification.title, notification.body
    return ({language: headings[language] for language in languages},
            {language: contents[language] for language in languages})


def _deactivate_invalid(delivery: onesignal.Delivery) -> None:
    if delivery.invalid_subscription_ids:
        devices_deactivate(subscription_ids=delivery.invalid_subscription_ids,
                           reason="invalid_player_id")
    user_ids = [int(i) for i in delivery.invalid_external_ids if i.isdigit()]
    if user_ids:
        devices_deactivate(user_ids=user_ids, reason="invalid_alias")


# --- The platform's hooks (jobs.stateful) ----------------------------------------------------


def pushes_unfinished(cutoff: datetime.datetime, limit: int) -> Iterator[Unfinished]:
    """Individual pushes queued or sending, last changed before ``cutoff``."""
    rows = (PushLog.objects.filter(status__in=[PushStatus.QUEUED, PushStatus.SENDING],
                                   campaign__isnull=True, updated_at__lt=cutoff)
            .order_by("pk").values_list("pk", "message_id", "send_at")[:limit])
    for pk, message_id, send_at in rows:
        yield Unfinished(message_id=message_id, args=(pk,), kwargs={}, eta=send_at)


def push_retry_prepare(push_log_id: int) -> bool:
    """Staff retry a failed push: the row goes back to ``queued``."""
    return bool(PushLog.objects.filter(
        pk=push_log_id, status__in=[PushStatus.FAILED, PushStatus.REJECTED],
    ).update(status=PushStatus.QUEUED, reason="", updated_at=timezone.now()))
