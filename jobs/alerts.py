"""Operational email to staff: failure streaks, reports, audit findings.

Alerts carry actor names, counts and ids, never personal data.

A job's staff email goes out once however often the job runs for the same thing:
:func:`email_staff_once` (one email per key: a dispute's stage) and
:func:`email_staff_for_run` (one per run of the calling job: every attempt of a scheduled
run, or of one message, shares the run). The key is claimed in the database before the
email is sent, so two deliveries of one message never both send it; a failed send
releases the claim, so the retry sends it; a claim left by a killed worker is taken
over after :data:`CLAIM_TIMEOUT`.
"""

from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.utils import timezone

#: A file sent with a staff email: (file name, content, MIME type).
Attachment = tuple[str, bytes, str]

#: A claim not marked sent after this long is taken to belong to a worker that died.
CLAIM_TIMEOUT = timedelta(minutes=10)


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


def _claim(key: str, subject: str) -> bool:
    from jobs.models import StaffEmail

    try:
        with transaction.atomic():
            StaffEmail.objects.create(key=key, subject=subject[:300])
        return True
    except IntegrityError:
        # Taken: sent already, being sent, or left by a worker that died while sending.
        return bool(StaffEmail.objects.filter(
            key=key, sent_at__isnull=True, claimed_at__lt=timezone.now() - CLAIM_TIMEOUT,
        ).update(claimed_at=timezone.now()))


def email_staff_once(*, key: str, subject: str, body: str,
                     attachments: Sequence[Attachment] = ()) -> int | None:
    """Email staff unless an email for ``key`` already went out (or is going out now).

    Returns how many recipients it went to, or ``None`` when it was not sent again.
    Raises what sending raises, with the claim released for the next attempt. Call it
    outside the caller's transaction: a rollback must not undo a sent email's claim.
    """
    from jobs.models import StaffEmail

    if not _claim(key, subject):
        return None
    try:
        recipients = email_staff(subject=subject, body=body, attachments=attachments)
    except BaseException:
        StaffEmail.objects.filter(key=key, sent_at__isnull=True).delete()
        raise
    StaffEmail.objects.filter(key=key).update(sent_at=timezone.now(), recipients=recipients)
    return recipients


def email_staff_for_run(*, purpose: str, subject: str, body: str,
                        attachments: Sequence[Attachment] = ()) -> int | None:
    """:func:`email_staff_once` keyed by ``purpose`` and the calling job's run (a
    schedule's tick, or the message: ``CurrentAttempt.run_key``). Outside a worker (a
    command, a shell) every call sends."""
    from jobs.middleware.attempts import current_attempt

    attempt = current_attempt()
    if attempt is None:
        return email_staff(subject=subject, body=body, attachments=attachments)
    return email_staff_once(key=f"{purpose}:{attempt.run_key}", subject=subject, body=body,
                            attachments=attachments)


def staff_emails_prune(*, older_than_days: int) -> int:
    """Delete the once-only claims of staff emails sent more than ``older_than_days``
    ago (their runs are long over). Returns how many."""
    from jobs.models import StaffEmail

    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = StaffEmail.objects.filter(sent_at__lt=cutoff).delete()
    return deleted
