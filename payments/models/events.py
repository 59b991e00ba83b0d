"""Stripe events as delivered: every verified delivery stored before it is processed (the
dj-stripe rule), so nothing Stripe sent is lost and any event can be replayed."""

from django.db import models
from django.utils import timezone


class EventStatus(models.TextChoices):
    RECEIVED = "received", "Received"  # stored, its processing enqueued
    PROCESSED = "processed", "Processed"
    IGNORED = "ignored", "Ignored (no handler for its type)"
    FAILED = "failed", "Failed (in the failed-job list)"


class EventSource(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    RECONCILIATION = "reconciliation", "Reconciliation (listed from Stripe)"


class StripeEvent(models.Model):
    """One Stripe event, unique on Stripe's id. ``payload`` is the raw JSON body as Stripe
    signed it, encrypted with the project's keys (jobs.encryption: Fernet, key rotation);
    nothing else of it is stored in clear but its id, type and the id of its object."""

    stripe_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100, db_index=True)
    object_id = models.CharField(max_length=255, blank=True, db_index=True)
    livemode = models.BooleanField(default=False)
    created = models.DateTimeField(help_text="When Stripe created the event.")
    payload = models.TextField(blank=True)
    status = models.CharField(max_length=10, choices=EventStatus.choices,
                              default=EventStatus.RECEIVED)
    source = models.CharField(max_length=15, choices=EventSource.choices,
                              default=EventSource.WEBHOOK)
    # The Dramatiq message driving the row (the re-drive asks Redis for it).
    message_id = models.CharField(max_length=64, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # The exception class of the last failure, never its message.
    last_error = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-received_at"]
        permissions = [("view_stripe_payload", "Can view Stripe event payloads")]
        indexes = [models.Index(fields=["status", "updated_at"], name="stripeevent_unfinished",
                                condition=models.Q(status="received"))]

    def __str__(self) -> str:
        return f"{self.type} {self.stripe_id}"
