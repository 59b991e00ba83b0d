"""Notification records: the email log, consent, the suppression list, in-app history.

Nothing here runs business logic on save; writes go through ``notifications.services``.
Addresses are stored only where the job needs them: the suppression list (it is a list of
addresses). The email log points at the user and never copies the address.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class EmailKind(models.TextChoices):
    WELCOME = "welcome", "Welcome"
    EMAIL_VERIFICATION = "email_verification", "Email verification"
    PASSWORD_RESET = "password_reset", "Password reset"
    ORDER_STATUS = "order_status", "Order status update"
    PAYMENT_CONFIRMATION = "payment_confirmation", "Payment confirmation"
    REVIEW_REMINDER = "review_reminder", "Review reminder"
    DAILY_DIGEST = "daily_digest", "Daily digest"


class EmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    # Claimed by a worker that is rendering and sending it right now.
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    # Retries exhausted or a permanent ESP error: the job is in the failed-job list.
    FAILED = "failed", "Failed"
    # The ESP refused the recipient (invalid, rejected): never retried.
    REJECTED = "rejected", "Rejected by ESP"
    # After sending: the ESP reported a hard bounce or a spam complaint (webhook).
    BOUNCED = "bounced", "Bounced"
    COMPLAINED = "complained", "Complained"
    SUPPRESSED = "suppressed", "Suppressed"
    RATE_LIMITED = "rate_limited", "Rate limited"
    OPTED_OUT = "opted_out", "Opted out"


class EmailLog(models.Model):
    """One email Jobsite decided to send, and what became of it.

    ``context`` holds the kind's small template values (ids, an order title); the
    recipient's address is read from the user at send time and is not stored here.
    """

    kind = models.CharField(max_length=32, choices=EmailKind.choices, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_logs"
    )
    status = models.CharField(
        max_length=16, choices=EmailStatus.choices, default=EmailStatus.QUEUED, db_index=True
    )
    context = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=2, blank=True)
    # The Dramatiq message driving the row: chosen at insert, the current one once claimed.
    message_id = models.CharField(max_length=64, blank=True)
    # The worker (broker id) holding the "sending" claim: a dead one's claim is taken over.
    claimed_by = models.CharField(max_length=64, blank=True)
    esp_message_id = models.CharField(max_length=255, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The exception class of the last failure: never its message, which may quote an address.
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Email #{self.pk} ({self.kind}, {self.status})"


class EmailPreference(models.Model):
    """A user's consent to non-transactional email. Transactional email ignores it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_preference"
    )
    marketing = models.BooleanField(default=True)
    digest = models.BooleanField(default=True)
    # Part of every unsubscribe link; bumped on unsubscribe so each link works once.
    unsubscribe_nonce = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Email preferences of user #{self.user_id}"


class SuppressionReason(models.TextChoices):
    HARD_BOUNCE = "hard_bounce", "Hard bounce"
    COMPLAINT = "complaint", "Spam complaint"
    REJECTED = "rejected", "Rejected by ESP"
    MANUAL = "manual", "Blacklisted by staff"


class Suppression(models.Model):
    """An address Jobsite never sends to again (bounces, complaints, staff blacklist)."""

    email = models.EmailField(unique=True)  # stored lower-cased
    reason = models.CharField(max_length=16, choices=SuppressionReason.choices)
    source = models.CharField(max_length=50, blank=True)  # "postmark", "sendgrid", "admin"
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        # The pk, not the address: str() ends up in admin messages and logs.
        return f"Suppression #{self.pk} ({self.reason})"


class Notification(models.Model):
    """An in-app notification (the bell). The daily digest summarises unread ones."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(max_length=50)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    is_read = models.BooleanField(default=False)
    is_important = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["user", "is_read", "created_at"])]

    def __str__(self) -> str:
        return f"Notification #{self.pk}"
