"""The suppression list: addresses Jobsite never sends to again (hard bounces, spam
complaints, ESP rejections, staff's blacklist), fed by the ESPs' tracking webhooks."""

import logging

from anymail.signals import AnymailTrackingEvent, EventType
from django.db import transaction

from audit.services import audit_log_record
from marketplace.models import User
from notifications.models import EmailLog, EmailStatus, Suppression, SuppressionReason

logger = logging.getLogger("notifications.services")


def suppression_add(*, email: str, reason: SuppressionReason, source: str,
                    created_by: User | None = None) -> Suppression:
    """Never send to ``email`` again. Idempotent: an existing entry is kept as it is."""
    suppression, created = Suppression.objects.get_or_create(
        email=email.strip().lower(),
        defaults={"reason": reason, "source": source, "created_by": created_by},
    )
    if created:
        audit_log_record(action="email.suppression_added", resource=suppression,
                         actor=created_by,
                         metadata={"reason": reason, "source": source})
    return suppression


def suppression_remove(*, suppression: Suppression, removed_by: User | None = None) -> None:
    audit_log_record(action="email.suppression_removed", resource=suppression,
                     actor=removed_by,
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
