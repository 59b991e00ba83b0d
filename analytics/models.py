"""Daily statistics and the monthly report: counts and sums only.

No row here names anyone: no user id, name, email or free text; a figure that counts people
is stored only for a group of at least ``ANALYTICS_MIN_GROUP_SIZE`` people (smaller ones:
``users`` NULL, ``suppressed`` true). Rows are written only by ``analytics.services``: a
day's rows are replaced together, in one transaction, so they hold nothing but figures (no
"computed at"), and a rerun on the same data writes identical rows.
"""

from django.db import models
from django.db.models import Q

from jobs.models import RunReport


class DailyStatistics(models.Model):
    """One local day of the business time zone (``time_zone``): ``utc_start`` to
    ``utc_end`` (exclusive), ``hours`` long — 23 on the day daylight saving time starts,
    25 on the day it ends."""

    day = models.DateField(primary_key=True)
    time_zone = models.CharField(max_length=64)
    hours = models.PositiveSmallIntegerField()
    utc_start = models.DateTimeField()
    utc_end = models.DateTimeField()
    min_group_size = models.PositiveSmallIntegerField(
        help_text="The suppression threshold the people counts were stored with.")
    orders_created = models.PositiveIntegerField()
    orders_completed = models.PositiveIntegerField()
    orders_cancelled = models.PositiveIntegerField()
    gross_revenue_cents = models.PositiveBigIntegerField(
        help_text="Revenue of payments settled this day, before tax, refunds and fees.")
    tax_collected_cents = models.PositiveBigIntegerField(
        help_text="Sales tax charged on the payments settled this day.")
    refunds_cents = models.PositiveBigIntegerField(help_text="Refunds posted this day.")
    emails_sent = models.PositiveIntegerField()
    push_sent = models.PositiveIntegerField()
    in_app_sent = models.PositiveIntegerField()

    class Meta:
        ordering = ["-day"]
        verbose_name = "daily statistics"
        verbose_name_plural = "daily statistics"

    def __str__(self) -> str:
        return f"Statistics of {self.day:%Y-%m-%d}"

    @property
    def completion_rate(self) -> float | None:
        """Completed orders among those that ended this day (completed or cancelled)."""
        ended = self.orders_completed + self.orders_cancelled
        return self.orders_completed / ended if ended else None


class Measure(models.TextChoices):
    NEW = "new", "New users"
    ACTIVE = "active", "Active users"


class Dimension(models.TextChoices):
    ROLE = "role", "Role"
    PROVINCE = "province", "Province"


class DailyUserCount(models.Model):
    """How many people of one group (a role, or a province) were new or active that day.
    ``users`` is NULL and ``suppressed`` true for a group below the threshold."""

    statistics = models.ForeignKey(DailyStatistics, on_delete=models.CASCADE,
                                   related_name="user_counts")
    measure = models.CharField(max_length=10, choices=Measure.choices)
    dimension = models.CharField(max_length=10, choices=Dimension.choices)
    group = models.CharField(max_length=20, help_text="client or contractor; a province "
                                                      "code, or 'unknown'.")
    users = models.PositiveIntegerField(null=True, blank=True)
    suppressed = models.BooleanField(default=False)

    class Meta:
        ordering = ["statistics", "measure", "dimension", "group"]
        constraints = [
            models.UniqueConstraint(fields=["statistics", "measure", "dimension", "group"],
                                    name="dailyusercount_one_per_group"),
            models.CheckConstraint(condition=Q(suppressed=True, users__isnull=True)
                                   | Q(suppressed=False, users__isnull=False),
                                   name="dailyusercount_suppressed_is_null"),
        ]

    def __str__(self) -> str:
        return f"{self.measure} {self.dimension}={self.group}"


class DailyQueueStatistics(models.Model):
    """One queue's jobs that day, from the job statistics
    (``jobs.monitoring.stats.performance_summary``). Times in milliseconds."""

    statistics = models.ForeignKey(DailyStatistics, on_delete=models.CASCADE,
                                   related_name="queues")
    queue_name = models.CharField(max_length=100)
    jobs_run = models.PositiveBigIntegerField(help_text="Succeeded + failed for good.")
    succeeded = models.PositiveBigIntegerField()
    failed = models.PositiveBigIntegerField()
    retried = models.PositiveBigIntegerField()
    dead_lettered = models.PositiveBigIntegerField()
    p50_wait_ms = models.FloatField(null=True, blank=True)
    p95_wait_ms = models.FloatField(null=True, blank=True)
    p50_run_ms = models.FloatField(null=True, blank=True)
    p95_run_ms = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["statistics", "queue_name"]
        verbose_name_plural = "daily queue statistics"
        constraints = [
            models.UniqueConstraint(fields=["statistics", "queue_name"],
                                    name="dailyqueuestatistics_one_per_queue"),
        ]

    def __str__(self) -> str:
        return self.queue_name

    @property
    def failure_rate(self) -> float | None:
        return self.failed / self.jobs_run if self.jobs_run else None


class MonthlyReport(RunReport):
    """The monthly statistics report: the month's figures (``figures``: counts and sums,
    people counts suppressed as in the daily rows), its chart, and whether it was emailed.
    Stored and emailed once per run (``jobs.operations.reports``)."""

    month = models.DateField(help_text="The first day of the month reported.")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    figures = models.JSONField(default=dict)
    summary = models.CharField(max_length=200)
    chart_png = models.BinaryField()

    class Meta:
        ordering = ["-month", "-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["month", "run_key"], condition=~Q(run_key=""),
                                    name="monthlyreport_one_per_run"),
        ]

    def __str__(self) -> str:
        return f"Statistics of {self.month:%Y-%m} (#{self.pk})"
