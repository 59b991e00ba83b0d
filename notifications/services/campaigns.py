"""Push campaigns: one push to many users, checked per user, sent in batches.

:func:`push_campaign_start` (staff, in admin) hands the campaign to ``push_campaign_plan``,
which walks the users in chunks of ids (re-enqueueing itself from the last id): each user
is checked as a single push would be — push on and the kind not turned off, promotional
consent, an active device (of the campaign's platform), the 20-per-hour limit (counted in
one pipelined round trip per chunk) — and gets a :class:`PushLog` saying what became of
it, and, when it is sent, an in-app notification. Users to send to fill
:class:`PushBatch` rows of at most ``PUSH_BATCH_SIZE`` each; users in their quiet hours go
into batches of their own, by when those end. A full batch, and every batch still open
when the walk ends, is enqueued as one ``push_batch_send`` job (delayed to its time), which
makes one OneSignal request for all its users by external id. Text is not personalised:
one request reaches thousands of users (English, and French for French devices).
"""

import json
import logging
from collections import Counter, defaultdict
from datetime import datetime, time, timedelta
from typing import Any, NamedTuple
from uuid import uuid4

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from dramatiq import Retry

from jobs.enqueue import enqueue_on_commit
from jobs.queues import PermanentError
from jobs.ratelimit import RateLimit, RateLimitExceeded, rate_limit_hit, rate_limit_hit_many
from jobs.stateful import Unfinished
from notifications import onesignal
from notifications.metrics import PUSH_OUTCOMES, PUSHES_RATE_LIMITED
from notifications.models import (
    PushBatch,
    PushCampaign,
    PushCampaignStatus,
    PushKind,
    PushLog,
    PushPreference,
    PushStatus,
)
from notifications.push_kinds import PUSH_KINDS, push_clean_context
from notifications.rendering import render_push
from notifications.services import sql
from notifications.services.devices import devices_deactivate
from notifications.services.push import (
    PUSH_RATE_LIMIT,
    PushDeliveryError,
    not_sent_reason,
    quiet_hours_end,
)

logger = logging.getLogger("notifications.services")

PLAN_CHUNK = 2000


def _batch_size() -> int:
    return int(settings.PUSH_BATCH_SIZE)


def onesignal_app_limit() -> RateLimit:
    """OneSignal's per-app request rate, as the limiter counts it."""
    return RateLimit(purpose="onesignal-app", limit=int(settings.ONESIGNAL_MAX_REQUESTS_PER_SECOND),
                     period_seconds=1)


@transaction.atomic
def push_campaign_start(*, campaign: PushCampaign, user: Any = None) -> bool:
    """Start sending a draft campaign (its context is checked first). Returns whether it
    started; a campaign already started is left alone.

    Raises:
      PushContentError: the campaign's context does not fit its kind.
    """
    from audit.services import audit_log_record
    from notifications.tasks import push_campaign_plan

    campaign.context = push_clean_context(PushKind(campaign.kind), campaign.context)
    started = PushCampaign.objects.filter(pk=campaign.pk, status=PushCampaignStatus.DRAFT
                                          ).update(status=PushCampaignStatus.PLANNING,
                                                   context=campaign.context,
                                                   started_at=timezone.now())
    if started:
        audit_log_record(action="push.campaign_started", resource=campaign, actor=user)
        enqueue_on_commit(push_campaign_plan, campaign.pk)
    return bool(started)


def push_campaign_plan(*, campaign_id: int) -> bool:
    """Check the next chunk of users of a campaign and batch those to send to; returns
    whether there is more to plan (the actor re-enqueues itself). Idempotent: a chunk is
    planned in one transaction that also moves the campaign's mark past it."""
    with transaction.atomic():
        campaign = (PushCampaign.objects.select_for_update()
                    .filter(pk=campaign_id, status=PushCampaignStatus.PLANNING).first())
        if campaign is None:
            return False
        rows = sql.campaign_users_after(campaign.planned_up_to_user_id,
                                        platform=campaign.platform, limit=PLAN_CHUNK)
        if not rows:
            _close_open_batches(campaign)
            PushCampaign.objects.filter(pk=campaign.pk).update(
                status=PushCampaignStatus.SENDING)
            _finish_if_sent(campaign.pk)
            return False
        _plan_chunk(campaign, rows)
        PushCampaign.objects.filter(pk=campaign.pk).update(planned_up_to_user_id=rows[-1][0])
        from notifications.tasks import push_campaign_plan as plan_actor

        enqueue_on_commit(plan_actor, campaign.pk)
    return True


class _Rules(NamedTuple):
    """What the per-user checks read of a preference (a model instance per user would
    cost more than the checks)."""

    enabled: bool
    opted_out_kinds: list[str]
    promotional_consent: bool
    quiet_start: time
    quiet_end: time


_DEFAULT_RULES = _Rules(enabled=True, opted_out_kinds=[], promotional_consent=False,
                        quiet_start=PushPreference._meta.get_field("quiet_start").default,
                        quiet_end=PushPreference._meta.get_field("quiet_end").default)


def _plan_chunk(campaign: PushCampaign, rows: list[tuple]) -> None:
    kind = PushKind(campaign.kind)
    spec = PUSH_KINDS[kind]
    now = timezone.now()
    decided: list[tuple[int, str, PushStatus | None, datetime | None]] = []
    for row in rows:
        (user_id, _first, language, tz, enabled, opted_out, consent, quiet_start, quiet_end,
         has_device) = row
        rules = _DEFAULT_RULES if enabled is None else _Rules(
            enabled, sql.json_value(opted_out) or [], consent, quiet_start, quiet_end)
        reason = not_sent_reason(kind=kind, preference=rules, has_device=has_device)
        send_at = None
        if reason is None and not spec.urgent:
            send_at = quiet_hours_end(now=now, time_zone=tz, start=rules.quiet_start,
                                      end=rules.quiet_end)
        decided.append((user_id, language if language in ("en", "fr") else "en", reason,
                        send_at))
    # The per-user limit, for every user still to send to, in one round trip.
    candidates = [user_id for user_id, _, reason, _ in decided if reason is None]
    allowed = dict(zip(candidates, rate_limit_hit_many(PUSH_RATE_LIMIT, candidates),
                       strict=True))
    groups: dict[datetime | None, list[int]] = defaultdict(list)  # send_at → row indexes
    for n, (user_id, language, reason, send_at) in enumerate(decided):
        if reason is None and not allowed[user_id]:
            decided[n] = (user_id, language, PushStatus.RATE_LIMITED, send_at)
            PUSHES_RATE_LIMITED.labels(kind).inc()
        elif reason is None:
            groups[send_at].append(n)
    batch_of: dict[int, int] = {}  # row index → batch id
    for send_at, members in groups.items():
        # Users to send to now share the campaign's start as their batches' time.
        batch_of.update(_assign_batches(campaign, send_at or campaign.started_at or now,
                                        members, exact=send_at is None))
    headings, contents = render_push(kind=kind, context=campaign.context,
                                     languages=("en", "fr"))
    notification_ids = iter(sql.notification_ids_reserve(len(batch_of)))
    notifications, logs = [], []
    context = json.dumps(campaign.context)
    for n, (user_id, language, reason, send_at) in enumerate(decided):
        notification_id = None
        if n in batch_of:
            notification_id = next(notification_ids)
            notifications.append((notification_id, user_id, f"push:{kind}",
                                  headings[language], contents[language], False,
                                  spec.urgent, now))
        status = reason or PushStatus.QUEUED
        logs.append((kind.value, user_id, status.value, context, language, "", campaign.pk,
                     batch_of.get(n), notification_id, "", reason.label if reason else "", 0,
                     send_at, now, now))
    sql.notifications_copy(notifications)
    sql.campaign_logs_copy(logs)
    sent = len(batch_of)
    PushCampaign.objects.filter(pk=campaign.pk).update(
        recipients=F("recipients") + sent, skipped=F("skipped") + len(logs) - sent)
    for status, count in Counter(reason or PushStatus.QUEUED
                                 for _, _, reason, _ in decided).items():
        PUSH_OUTCOMES.labels(kind, status).inc(count)


def _assign_batches(campaign: PushCampaign, send_at: datetime, members: list[int], *,
                    exact: bool = False) -> dict[int, int]:
    """Put ``members`` into the campaign's open batch for ``send_at`` (rounded up to the
    minute, unless ``exact``: so users whose quiet hours end within one minute share a
    batch), opening new ones as they fill; a batch that fills is closed and enqueued.
    Returns each member's batch id."""
    if not exact and (send_at.second or send_at.microsecond):
        send_at = send_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    size = _batch_size()
    assigned: dict[int, int] = {}
    pending = list(members)
    while pending:
        batch = (PushBatch.objects.select_for_update()
                 .filter(campaign=campaign, send_at=send_at, is_closed=False).first())
        if batch is None:
            number = (PushBatch.objects.filter(campaign=campaign)
                      .order_by("-number").values_list("number", flat=True).first() or 0) + 1
            batch = PushBatch.objects.create(campaign=campaign, number=number,
                                             send_at=send_at)
        room = size - batch.size
        taken, pending = pending[:room], pending[room:]
        assigned.update(dict.fromkeys(taken, batch.pk))
        batch.size += len(taken)
        PushBatch.objects.filter(pk=batch.pk).update(size=batch.size)
        if batch.size >= size:
            _close(batch)
    return assigned


def _close(batch: PushBatch) -> None:
    from notifications.tasks import push_batch_send

    message_id = str(uuid4())
    PushBatch.objects.filter(pk=batch.pk).update(is_closed=True, message_id=message_id)
    delay = int((batch.send_at - timezone.now()).total_seconds() * 1000)
    enqueue_on_commit(push_batch_send, batch.campaign_id, batch.number,
                      _message_id=message_id, _delay_ms=delay if delay > 0 else None)


def _close_open_batches(campaign: PushCampaign) -> None:
    for batch in PushBatch.objects.select_for_update().filter(campaign=campaign,
                                                              is_closed=False):
        _close(batch)


@transaction.atomic
def _finish_if_sent(campaign_id: int) -> None:
    """Mark the campaign done once planning is over and no batch is left to send.

    Under the campaign's row lock: the end of planning and the last batch's send may
    happen at once, and each, checking without it, would see the other still running.
    (Locked by id alone: a lock filtered on the status would skip, not wait for, a row
    whose status another transaction is changing.)"""
    status = (PushCampaign.objects.select_for_update().filter(pk=campaign_id)
              .values_list("status", flat=True).first())
    if status != PushCampaignStatus.SENDING:
        return
    open_batches = PushBatch.objects.filter(campaign_id=campaign_id).exclude(
        status__in=[PushStatus.SENT, PushStatus.NOT_DELIVERED, PushStatus.REJECTED,
                    PushStatus.FAILED])
    if not open_batches.exists():
        PushCampaign.objects.filter(pk=campaign_id).update(
            status=PushCampaignStatus.DONE, finished_at=timezone.now())


def push_batch_send(*, campaign_id: int, number: int, final_attempt: bool = False,
                    message_id: str = "") -> str:
    """Send one batch of a campaign in one OneSignal request (idempotency key from the
    batch). Returns what happened ("sent", "rescheduled", "done already", ...).

    Raises:
      PermanentError: OneSignal refused the request (4xx). PushDeliveryError: 5xx,
      network; retried. The app's request rate is kept by rescheduling, never by waiting.
    """
    now = timezone.now()
    claimed = PushBatch.objects.filter(
        campaign_id=campaign_id, number=number, is_closed=True,
        status__in=[PushStatus.QUEUED, PushStatus.SENDING]).update(
        status=PushStatus.SENDING, attempts=F("attempts") + 1, updated_at=now,
        **({"message_id": message_id} if message_id else {}))
    if not claimed:
        return "done already"
    batch = PushBatch.objects.select_related("campaign").get(campaign_id=campaign_id,
                                                             number=number)
    try:
        rate_limit_hit(onesignal_app_limit(), "app")
    except RateLimitExceeded as exc:
        return _reschedule(batch, delay_ms=exc.retry_after * 1000)
    campaign = batch.campaign
    kind = PushKind(campaign.kind)
    user_ids = list(PushLog.objects.filter(batch=batch, status=PushStatus.QUEUED)
                    .values_list("user_id", flat=True))
    if not user_ids:
        PushBatch.objects.filter(pk=batch.pk).update(status=PushStatus.SENT)
        _finish_if_sent(campaign_id)
        return "empty"
    headings, contents = render_push(kind=kind, context=campaign.context,
                                     languages=("en", "fr"))
    body = onesignal.notification_body(
        headings=headings, contents=contents,
        key=onesignal.idempotency_key(f"push-batch:{campaign_id}:{number}"),
        data={"kind": kind.value, "campaign_id": campaign_id},
        external_ids=[str(user_id) for user_id in user_ids])
    logs = PushLog.objects.filter(batch=batch, status=PushStatus.QUEUED)
    try:
        delivery = onesignal.send(body)
    except onesignal.OneSignalError as exc:
        status = (PushStatus.REJECTED if exc.permanent
                  else PushStatus.FAILED if final_attempt else PushStatus.QUEUED)
        PushBatch.objects.filter(pk=batch.pk).update(status=status,
                                                     last_error=exc.description[:200])
        if status != PushStatus.QUEUED:
            logs.update(status=status, reason=exc.description[:200])
            _finish_if_sent(campaign_id)
        if exc.permanent:
            raise PermanentError(f"Batch {number}: refused ({exc.description}).") from None
        if exc.retry_after is not None and not final_attempt:
            raise Retry(delay=int(exc.retry_after * 1000)) from None
        raise PushDeliveryError(f"Batch {number}: not sent ({exc.description}).") from None
    sent_at = timezone.now()
    invalid = [int(i) for i in delivery.invalid_external_ids if i.isdigit()]
    with transaction.atomic():
        if invalid:
            logs.filter(user_id__in=invalid).update(
                status=PushStatus.NOT_DELIVERED, reason="invalid alias: no subscribed device",
                updated_at=sent_at)
            devices_deactivate(user_ids=invalid, reason="invalid_alias")
        status = PushStatus.SENT if delivery.sent else PushStatus.NOT_DELIVERED
        logs.filter(status=PushStatus.QUEUED).update(
            status=status, provider_id=delivery.notification_id, sent_at=sent_at,
            reason="" if delivery.sent else "; ".join(delivery.errors)[:200],
            updated_at=sent_at)
        PushBatch.objects.filter(pk=batch.pk).update(
            status=status, provider_id=delivery.notification_id, sent_at=sent_at)
        _finish_if_sent(campaign_id)
    PUSH_OUTCOMES.labels(kind, status).inc(len(user_ids) - len(invalid))
    return status


def _reschedule(batch: PushBatch, *, delay_ms: int) -> str:
    """Send the batch later under a new message (the app's request rate is used up): the
    batch goes back to queued and its retry budget is untouched."""
    from notifications.tasks import push_batch_send as batch_actor

    message_id = str(uuid4())
    with transaction.atomic():
        PushBatch.objects.filter(pk=batch.pk).update(status=PushStatus.QUEUED,
                                                     message_id=message_id,
                                                     attempts=F("attempts") - 1)
        enqueue_on_commit(batch_actor, batch.campaign_id, batch.number,
                          _message_id=message_id, _delay_ms=max(1, delay_ms))
    return "rescheduled"


# --- The platform's hooks (jobs.stateful) ----------------------------------------------------


def batches_unfinished(cutoff: datetime, limit: int):
    rows = (PushBatch.objects.filter(is_closed=True,
                                     status__in=[PushStatus.QUEUED, PushStatus.SENDING],
                                     updated_at__lt=cutoff)
            .order_by("pk").values_list("campaign_id", "number", "message_id",
                                        "send_at")[:limit])
    for campaign_id, number, message_id, send_at in rows:
        yield Unfinished(message_id=message_id, args=(campaign_id, number), kwargs={},
                         eta=send_at)


def batch_retry_prepare(campaign_id: int, number: int) -> bool:
    """Staff retry a failed batch: it and its recipients go back to queued."""
    with transaction.atomic():
        batch = PushBatch.objects.filter(
            campaign_id=campaign_id, number=number,
            status__in=[PushStatus.FAILED, PushStatus.REJECTED]).first()
        if batch is None:
            return False
        PushLog.objects.filter(batch=batch, status=batch.status).update(
            status=PushStatus.QUEUED, reason="")
        PushBatch.objects.filter(pk=batch.pk).update(status=PushStatus.QUEUED,
                                                     last_error="")
        PushCampaign.objects.filter(pk=campaign_id).update(status=PushCampaignStatus.SENDING,
                                                           finished_at=None)
    return True
