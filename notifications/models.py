"""Notification records: the email log, consent, the suppression list, in-app history.

Nothing here runs business logic on save; writes go through ``notifications.services``.
Addresses are stored only where the job needs them: the suppression list (it is a list of
addresses). The email log points at the user and never copies the address.
"""

import datetime

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class EmailKind(models.TextChoices):
    WELCOME = "welcome", "Welcome"
    EMAIL_VERIFICATION = "email_verification", "Email verification"
    PASSWORD_RESET = "password_reset", "Password reset"
    ORDER_STATUS = "order_status", "Order status update"
    PAYMENT_CONFIRMATION = "payment_confirmation", "Payment confirmation"
    REVIEW_REMINDER = "review_reminder", "Review reminder"
    DAILY_DIGEST = "daily_digest", "Daily digest"
    ACCOUNT_DELETION_NOTICE = "account_deletion_notice", "Account deletion notice"
    SUBSCRIPTION_RENEWAL_REMINDER = ("subscription_renewal_reminder",
                                     "Subscription renewal reminder")
    SUBSCRIPTION_PAYMENT_FAILED = "subscription_payment_failed", "Subscription payment failed"
    SUBSCRIPTION_SUSPENDED = "subscription_suspended", "Subscription features suspended"
    SUBSCRIPTION_CANCELED = "subscription_canceled", "Subscription ended"
    # To the order's contractor (payments.services.disputes).
    DISPUTE_OPENED = "dispute_opened", "Payment dispute opened"
    DISPUTE_CLOSED = "dispute_closed", "Payment dispute closed"


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

    # Indexed by the (user, is_read, created_at) index, which leads with it.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications",
        db_index=False,
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


# --- Push notifications --------------------------------------------------------------------


class PushKind(models.TextChoices):
    ORDER_STATUS = "order_status", "Order status update"
    NEW_MESSAGE = "new_message", "New chat message"
    PAYMENT_CONFIRMATION = "payment_confirmation", "Payment confirmation"
    REVIEW_REQUEST = "review_request", "Review request"
    PROMOTIONAL = "promotional", "Promotional"


class Platform(models.TextChoices):
    IOS = "ios", "iOS"
    ANDROID = "android", "Android"
    WEB = "web", "Web"


class Device(models.Model):
    """A device a user receives push on: its OneSignal subscription id, encrypted at rest.

    ``subscription_id_encrypted`` is a Fernet token under ``JOB_PAYLOAD_KEYS``; the keyed
    hash finds a device by its id without storing it in clear. Neither is shown in admin.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="devices")
    platform = models.CharField(max_length=10, choices=Platform.choices)
    subscription_id_encrypted = models.TextField()
    subscription_id_hash = models.CharField(max_length=64, unique=True)
    is_active = models.BooleanField(default=True, db_index=True)
    last_seen_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_reason = models.CharField(max_length=50, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        indexes = [models.Index(fields=["user", "is_active"], name="device_user_active")]

    def __str__(self) -> str:
        return f"Device #{self.pk} ({self.platform})"


class PushPreference(models.Model):
    """A user's push settings: on or off, kinds turned off, explicit promotional consent,
    quiet hours in the user's own time zone (``User.time_zone``)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                related_name="push_preference")
    enabled = models.BooleanField(default=True)
    opted_out_kinds = models.JSONField(default=list, blank=True)
    promotional_consent = models.BooleanField(default=False)
    promotional_consent_at = models.DateTimeField(null=True, blank=True)
    promotional_consent_source = models.CharField(max_length=50, blank=True)
    quiet_start = models.TimeField(default=datetime.time(21, 0))
    quiet_end = models.TimeField(default=datetime.time(8, 0))
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Push preferences of user #{self.user_id}"


class PushStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    # OneSignal answered 200 with no notification id: nothing was sent (no subscribed
    # device); ``reason`` says what it reported.
    NOT_DELIVERED = "not_delivered", "Not delivered (no subscribed device)"
    FAILED = "failed", "Failed"
    REJECTED = "rejected", "Rejected by OneSignal"
    OPTED_OUT = "opted_out", "Opted out"
    NO_CONSENT = "no_consent", "No promotional consent"
    NO_DEVICE = "no_device", "No active device"
    RATE_LIMITED = "rate_limited", "Rate limited"


class PushCampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    PLANNING = "planning", "Checking recipients"
    SENDING = "sending", "Sending"
    DONE = "done", "Done"


class PushCampaign(models.Model):
    """A push to many users (a promotion, an announcement): each recipient is checked like
    any push (consent, opt-out, quiet hours, limit), then sent in batches of at most
    ``PUSH_BATCH_SIZE`` users per OneSignal request, one job per batch."""

    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32, choices=PushKind.choices,
                            default=PushKind.PROMOTIONAL)
    context = models.JSONField(default=dict, blank=True)
    platform = models.CharField(max_length=10, choices=Platform.choices, blank=True,
                                help_text="Only users with an active device of this "
                                          "platform (empty: any).")
    status = models.CharField(max_length=10, choices=PushCampaignStatus.choices,
                              default=PushCampaignStatus.DRAFT)
    planned_up_to_user_id = models.BigIntegerField(default=0, editable=False)
    recipients = models.PositiveIntegerField(default=0, editable=False)
    skipped = models.PositiveIntegerField(default=0, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name


class PushBatch(models.Model):
    """Up to ``PUSH_BATCH_SIZE`` recipients of a campaign sent in one OneSignal request,
    at ``send_at`` (recipients in their quiet hours are grouped by when those end)."""

    campaign = models.ForeignKey(PushCampaign, on_delete=models.CASCADE,
                                 related_name="batches")
    number = models.PositiveIntegerField()
    send_at = models.DateTimeField()
    size = models.PositiveIntegerField(default=0)
    is_closed = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=PushStatus.choices,
                              default=PushStatus.QUEUED)
    message_id = models.CharField(max_length=64, blank=True)
    provider_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["campaign", "number"]
        verbose_name_plural = "push batches"
        constraints = [models.UniqueConstraint(fields=["campaign", "number"],
                                               name="pushbatch_campaign_number")]

    def __str__(self) -> str:
        return f"Batch {self.number} of campaign #{self.campaign_id}"


class PushLog(models.Model):
    """One push to one user, and what became of it. Its in-app twin is ``notification``.

    Few indexes, and partial ones where most rows have nothing to index: every push writes
    the row three times (queued, sending, its outcome), and each write of an indexed
    column writes every index (README "Performance")."""

    kind = models.CharField(max_length=32, choices=PushKind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="push_logs")
    status = models.CharField(max_length=16, choices=PushStatus.choices,
                              default=PushStatus.QUEUED)
    context = models.JSONField(default=dict, blank=True)
    language = models.CharField(max_length=2, blank=True)
    # Individual pushes: the message driving the row (a redelivery of it may take over).
    message_id = models.CharField(max_length=64, blank=True)
    device = models.ForeignKey(Device, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+", help_text="Set when sent to one device.",
                               db_index=False)
    campaign = models.ForeignKey(PushCampaign, on_delete=models.CASCADE, null=True,
                                 blank=True, related_name="logs", db_index=False)
    batch = models.ForeignKey(PushBatch, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="logs", db_index=False)
    notification = models.ForeignKey(Notification, on_delete=models.SET_NULL, null=True,
                                     blank=True, related_name="+")
    provider_id = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    send_at = models.DateTimeField(null=True, blank=True,
                                   help_text="Delayed to the end of the user's quiet hours.")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The re-drive's question: pushes unfinished since when.
            models.Index(fields=["status", "updated_at"], name="pushlog_unfinished",
                         condition=Q(status__in=["queued", "sending"])),
            models.Index(fields=["device"], name="pushlog_device",
                         condition=Q(device__isnull=False)),
            models.Index(fields=["campaign", "status"], name="pushlog_campaign",
                         condition=Q(campaign__isnull=False)),
            models.Index(fields=["batch", "status"], name="pushlog_batch",
                         condition=Q(batch__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"Push #{self.pk} ({self.kind}, {self.status})"
