"""Actors of the platform and their default schedules. Thin: one service call each.

Scheduled actors of the other apps (retention, statistics, digests, subscriptions) are
declared with the apps that own them, each with its own ``SCHEDULES``.
"""

from jobs import services
from jobs.monitoring import stats
from jobs.operations import certificates, log_cleanup, performance_report, security_audit
from jobs.queues import HOUR, MINUTE, Queue, jobsite_actor
from jobs.scheduling import services as scheduling_services
from jobs.scheduling.specs import ScheduleSpec

OPERATIONS_TIME_ZONE = "America/Toronto"


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


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="log_cleanup", time_limit=30 * MINUTE)
def log_cleanup_task() -> None:
    log_cleanup.log_cleanup()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="schedule_executions_prune",
               time_limit=10 * MINUTE)
def schedule_executions_prune() -> None:
    scheduling_services.schedule_executions_prune()


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="performance_report", time_limit=HOUR)
def performance_report_task(days: int = 7) -> None:
    performance_report.performance_report_send(days=days)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="security_audit", time_limit=15 * MINUTE)
def security_audit_task() -> None:
    security_audit.security_audit_run()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="certificate_expiry_check",
               time_limit=10 * MINUTE)
def certificate_expiry_check() -> None:
    certificates.certificate_check_run()


SCHEDULES: list[ScheduleSpec] = [
    ScheduleSpec(
        name="job_stats_rollup", actor_name="job_stats_rollup", cron="*/10 * * * *",
        time_zone="UTC", misfire_grace_seconds=600,
        description="Fold per-minute job statistics from Redis into hourly PostgreSQL rows.",
    ),
    ScheduleSpec(name="log-cleanup", actor_name="log_cleanup", cron="0 2 * * *",
                 time_zone=OPERATIONS_TIME_ZONE,
                 description="Daily 02:00 Toronto: prune execution records, failed jobs "
                             "and log files past retention (seed 12.8.2)."),
    ScheduleSpec(name="performance-report", actor_name="performance_report",
                 cron="0 5 * * 0", time_zone=OPERATIONS_TIME_ZONE, kwargs={"days": 7},
                 description="Sunday 05:00 Toronto: weekly job performance email to staff "
                             "(seed 12.8.3)."),
    ScheduleSpec(name="security-audit", actor_name="security_audit", cron="0 6 * * 0",
                 time_zone=OPERATIONS_TIME_ZONE,
                 description="Sunday 06:00 Toronto: security audit, findings to staff "
                             "(seed 12.8.3)."),
    ScheduleSpec(name="certificate-expiry-check", actor_name="certificate_expiry_check",
                 cron="0 10 1 * *", time_zone=OPERATIONS_TIME_ZONE,
                 description="1st of month 10:00 Toronto: TLS certificates of "
                             "CERT_CHECK_HOSTS, alert under 30 days (seed 12.8.4)."),
]
