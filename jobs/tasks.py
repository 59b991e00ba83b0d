"""Actors of the jobs app. Thin: one service call each."""

from jobs import services, stats
from jobs.queues import MINUTE, Queue, jobsite_actor
from jobs.schedules import ScheduleSpec
from jobs.scheduling.tasks import SCHEDULES as SCHEDULING_SCHEDULES
from jobs.scheduling.tasks import (  # noqa: F401  (registered for django-dramatiq)
    certificate_expiry_check,
    log_cleanup,
    performance_report,
    schedule_executions_prune,
    security_audit,
)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="failed_jobs_purge")
def failed_jobs_purge() -> None:
    """Delete failed-job rows past ``FAILED_JOB_RETENTION_DAYS``. Idempotent.

    The daily ``log-cleanup`` schedule does this with the other retention pruning; this
    actor is for a staff "Run now" or a schedule of its own.
    """
    services.failed_jobs_purge()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="job_stats_rollup", time_limit=10 * MINUTE)
def job_stats_rollup() -> None:
    """Fold settled per-minute job statistics into hourly rows. Idempotent."""
    stats.job_stats_rollup()


SCHEDULES: list[ScheduleSpec] = [
    ScheduleSpec(
        name="job_stats_rollup",
        actor_name="job_stats_rollup",
        cron="*/10 * * * *",
        time_zone="UTC",
        description="Fold per-minute job statistics from Redis into hourly PostgreSQL rows.",
        misfire_grace_seconds=600,
    ),
]

# The scheduler's operations jobs (jobs/scheduling/tasks.py).
SCHEDULES += SCHEDULING_SCHEDULES
