"""Failed jobs: messages that failed for good, kept for staff to retry or discard."""

from django.conf import settings
from django.db import models


class FailedJobStatus(models.TextChoices):
    FAILED = "failed", "Failed"
    RETRIED = "retried", "Retried"
    DISCARDED = "discarded", "Discarded"


class FailedJob(models.Model):
    """A message that exhausted its retries, failed permanently or could not be decoded.

    ``payload`` holds the message's args, kwargs and options encrypted with the
    ``JOB_PAYLOAD_KEYS`` (see ``jobs.encryption``): arguments are ids and small values, but
    may still be personal. The exception message and traceback are scrubbed of personal
    data before they are stored. Rows are kept ``FAILED_JOB_RETENTION_DAYS`` after the last
    failure, whatever their status.
    """

    message_id = models.CharField(max_length=64, unique=True)
    actor_name = models.CharField(
        max_length=255, blank=True, db_index=True,
        help_text="Empty when the message could not be decoded.",
    )
    queue_name = models.CharField(max_length=100, db_index=True)
    status = models.CharField(
        max_length=10, choices=FailedJobStatus.choices, default=FailedJobStatus.FAILED,
        db_index=True,
    )
    payload = models.TextField(blank=True, help_text="Encrypted args, kwargs and options.")
    schedule_id = models.BigIntegerField(null=True, blank=True)
    exception_type = models.CharField(max_length=255)
    exception_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    first_failed_at = models.DateTimeField()
    last_failed_at = models.DateTimeField(db_index=True)

    retried_at = models.DateTimeField(null=True, blank=True)
    retried_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )
    retry_message_id = models.CharField(
        max_length=64, blank=True, help_text="The message the retry enqueued."
    )
    discarded_at = models.DateTimeField(null=True, blank=True)
    discarded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="+",
    )

    class Meta:
        ordering = ["-last_failed_at"]

    def __str__(self) -> str:
        return f"{self.actor_name or 'unknown actor'} ({self.message_id})"
