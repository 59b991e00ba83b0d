"""Actors of the jobs app (django-dramatiq discovers ``<app>.tasks``), and its SCHEDULES."""

from jobs.scheduling.tasks import (  # noqa: F401
    SCHEDULES,
    certificate_expiry_check,
    log_cleanup,
    performance_report,
    schedule_executions_prune,
    security_audit,
)
