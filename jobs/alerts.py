"""Operational email to staff: failure streaks, reports, audit findings.

Alerts carry actor names, counts and ids, never personal data.
"""

from collections.abc import Sequence

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage

#: A file sent with a staff email: (file name, content, MIME type).
Attachment = tuple[str, bytes, str]


def staff_alert_recipients() -> list[str]:
    """``STAFF_ALERT_EMAILS`` when set, otherwise every active superuser's address."""
    if settings.STAFF_ALERT_EMAILS:
        return list(settings.STAFF_ALERT_EMAILS)
    users = get_user_model().objects.filter(is_active=True, is_superuser=True)
    return sorted(users.values_list("email", flat=True))


def email_staff(*, subject: str, body: str, attachments: Sequence[Attachment] = ()) -> int:
    """Send one plain-text alert to staff, with ``attachments`` if any. Returns how many
    recipients it went to."""
    recipients = staff_alert_recipients()
    if not recipients:
        return 0
    EmailMessage(f"[Jobsite] {subject}", body, settings.DEFAULT_FROM_EMAIL, recipients,
                 attachments=list(attachments)).send()
    return len(recipients)
