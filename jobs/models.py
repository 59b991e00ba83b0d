"""Records of the jobs app. Writes go through ``jobs.services``."""

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


def _empty_buckets() -> list[int]:
    from jobs.stats import BUCKET_COUNT

    return [0] * BUCKET_COUNT


class JobStatHour(models.Model):
    """One hour of job statistics for one (queue, actor), rolled up from Redis minutes.

    Written only by ``jobs.stats.job_stats_rollup``. ``minutes`` lists the unix minutes
    already folded in: that is what makes the rollup idempotent. Bucket lists follow
    ``jobs.stats.BUCKETS_MS`` (one count per bucket, the last one for slower runs).
    """

    hour = models.DateTimeField(help_text="Start of the hour (UTC).")
    queue_name = models.CharField(max_length=100)
    actor_name = models.CharField(max_length=200)
    enqueued = models.PositiveBigIntegerField(default=0)
    succeeded = models.PositiveBigIntegerField(default=0)
    failed = models.PositiveBigIntegerField(default=0)
    retried = models.PositiveBigIntegerField(default=0)
    dead_lettered = models.PositiveBigIntegerField(default=0)
    skipped = models.PositiveBigIntegerField(default=0)
    run_ms_sum = models.PositiveBigIntegerField(default=0)
    wait_ms_sum = models.PositiveBigIntegerField(default=0)
    run_buckets = models.JSONField(default=_empty_buckets)
    wait_buckets = models.JSONField(default=_empty_buckets)
    minutes = models.JSONField(default=list)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "queue_name", "actor_name"], name="jobstathour_unique_key"
            ),
        ]
        indexes = [models.Index(fields=["hour"], name="jobstathour_hour")]
        ordering = ["-hour", "queue_name", "actor_name"]
        permissions = [("view_queue_dashboard", "Can view the queue dashboard")]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.queue_name}/{self.actor_name}"

    def as_counts(self):
        from jobs.stats import StatCounts

        return StatCounts(
            enqueued=self.enqueued, succeeded=self.succeeded, failed=self.failed,
            retried=self.retried, dead_lettered=self.dead_lettered, skipped=self.skipped,
            run_ms_sum=self.run_ms_sum, wait_ms_sum=self.wait_ms_sum,
            run_buckets=list(self.run_buckets), wait_buckets=list(self.wait_buckets),
        )

    def set_counts(self, counts) -> None:
        for name in ("enqueued", "succeeded", "failed", "retried", "dead_lettered", "skipped",
                     "run_ms_sum", "wait_ms_sum", "run_buckets", "wait_buckets"):
            setattr(self, name, getattr(counts, name))


# --- Scheduler (jobs/scheduling/) --------------------------------------------------------
from jobs.scheduling.models import (  # noqa: E402,F401,I001
    OperationsReport,
    ReportKind,
    Schedule,
    ScheduleOutcome,
)
