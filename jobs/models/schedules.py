"""Schedules staff edit in admin; ``runscheduler`` fires them."""

from django.db import models
from django.utils import timezone

from jobs.scheduling.triggers import cron_describe


class ScheduleOutcome(models.TextChoices):
    ENQUEUED = "enqueued", "Enqueued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    SKIPPED_OVERLAP = "skipped_overlap", "Skipped: previous run still executing"
    MISSED = "missed", "Missed (scheduler down past the misfire grace)"
    ERROR = "error", "Could not enqueue"


class Schedule(models.Model):
    """One recurring job: which actor, with which arguments, on which cron, in which zone.

    The source of truth: ``runscheduler`` mirrors enabled rows into APScheduler jobs
    (django-apscheduler's ``DjangoJobStore``, job id ``schedule:<pk>``).
    """

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    actor_name = models.CharField("actor", max_length=200)
    kwargs = models.JSONField("keyword arguments", default=dict, blank=True)
    cron = models.CharField(
        "cron expression", max_length=100,
        help_text="5 fields: minute hour day-of-month month day-of-week (0 or 7 = Sunday).",
    )
    time_zone = models.CharField(max_length=64, default="UTC",
                                 help_text="IANA name, e.g. America/Toronto or UTC.")
    enabled = models.BooleanField(default=True)
    misfire_grace_seconds = models.PositiveIntegerField(
        default=3600,
        help_text="After downtime, a missed fire still runs (once) if it is at most this late.",
    )
    # Declared by an app's SCHEDULES (``schedules_sync``) and whether staff changed it since:
    # a customised default is never overwritten by a sync.
    is_default = models.BooleanField(default=False, editable=False)
    is_customized = models.BooleanField(default=False, editable=False)
    default_fingerprint = models.CharField(max_length=64, blank=True, editable=False)

    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_outcome = models.CharField(max_length=20, choices=ScheduleOutcome.choices, blank=True,
                                    editable=False)
    last_outcome_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_message_id = models.CharField(max_length=64, blank=True, editable=False)
    last_error = models.CharField(max_length=200, blank=True, editable=False)

    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def job_id(self) -> str:
        """The APScheduler job id of this schedule."""
        return f"schedule:{self.pk}"

    @property
    def cron_description(self) -> str:
        return cron_describe(self.cron)
