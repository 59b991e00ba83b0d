"""Models of the jobs app."""

from django.db import models


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
