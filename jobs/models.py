"""Models of the jobs app. Each feature keeps its models in its own module."""

from jobs.scheduling.models import (  # noqa: F401
    OperationsReport,
    ReportKind,
    Schedule,
    ScheduleOutcome,
)
