"""The daily digest: one email per opted-in user with unread in-app notifications."""

import logging
from datetime import timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q
from django.utils import timezone

from marketplace.models import User
from notifications.kinds import EmailContentError
from notifications.models import EmailKind, EmailLog, EmailPreference, EmailStatus, Notification
from notifications.services.sending import send_email

logger = logging.getLogger("notifications.services")

DIGEST_MAX_ITEMS = 20
DIGEST_CHUNK = 500
DIGEST_REPEAT = timedelta(hours=20)


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
