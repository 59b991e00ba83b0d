"""Hourly job statistics in PostgreSQL, rolled up from the per-minute counts in Redis."""

from django.db import models

from jobs.monitoring.buckets import empty_buckets


class JobStatHour(models.Model):
    """One hour of job statistics for one (queue, actor), rolled up from Redis minutes.

    Written only by ``jobs.monitoring.stats.job_stats_rollup``. ``minutes`` lists the unix
    minutes already folded in: that is what makes the rollup idempotent. Bucket lists
    follow ``jobs.monitoring.buckets.BUCKETS_MS`` (one count per bucket, the last one for
    slower runs).
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
    run_buckets = models.JSONField(default=empty_buckets)
    wait_buckets = models.JSONField(default=empty_buckets)
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
