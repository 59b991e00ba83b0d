"""Records of the jobs app, one module per subject. Writes go through the services."""

from jobs.models.failed_jobs import FailedJob, FailedJobStatus
from jobs.models.job_stats import JobStatHour
from jobs.models.recovery import BrokerEpoch
from jobs.models.reports import OperationsReport, ReportKind, RunReport
from jobs.models.schedules import Schedule, ScheduleOutcome
from jobs.models.staff_emails import StaffEmail

__all__ = ["BrokerEpoch", "FailedJob", "FailedJobStatus", "JobStatHour", "OperationsReport",
           "ReportKind", "RunReport", "Schedule", "ScheduleOutcome", "StaffEmail"]
