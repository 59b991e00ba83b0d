"""Operations actors owned by the scheduler issue (seed 12.8), and their default schedules.

Thin: one service call each. Other scheduled actors (retention, statistics, backups,
digests, subscriptions) come with the apps that own them, each with its own SCHEDULES.
"""

from jobs.queues import HOUR, MINUTE, Queue, jobsite_actor
from jobs.schedules import ScheduleSpec
from jobs.scheduling import audit, certs, reports, services

OPERATIONS_TIME_ZONE = "America/Toronto"


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="log_cleanup", time_limit=30 * MINUTE)
def log_cleanup() -> None:
    services.log_cleanup()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="schedule_executions_prune",
               time_limit=10 * MINUTE)
def schedule_executions_prune() -> None:
    services.schedule_executions_prune()


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="performance_report", time_limit=HOUR)
def performance_report(days: int = 7) -> None:
    reports.performance_report_send(days=days)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="security_audit", time_limit=15 * MINUTE)
def security_audit() -> None:
    audit.security_audit_run()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="certificate_expiry_check",
               time_limit=10 * MINUTE)
def certificate_expiry_check() -> None:
    certs.certificate_check_run()


SCHEDULES: list[ScheduleSpec] = [
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
