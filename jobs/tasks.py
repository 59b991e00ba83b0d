"""Actors of the jobs app. Thin: one service call each."""

from jobs import services
from jobs.queues import Queue, jobsite_actor
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
    """Delete failed-job rows past ``FAILED_JOB_RETENTION_DAYS``. Idempotent."""
    services.failed_jobs_purge()


SCHEDULES: list[ScheduleSpec] = [
    ScheduleSpec(
        name="failed_jobs_purge",
        actor_name="failed_jobs_purge",
        cron="30 3 * * *",
        time_zone="UTC",
        description="Delete failed-job records older than FAILED_JOB_RETENTION_DAYS.",
    ),
]

# The scheduler's operations jobs (jobs/scheduling/tasks.py).
SCHEDULES += SCHEDULING_SCHEDULES
