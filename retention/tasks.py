"""Retention actors on the maintenance queue. Each run goes batch by batch from the last id
it reached, re-enqueueing itself, so no job holds a long transaction or runs for hours."""

from jobs.enqueue import enqueue_on_commit
from jobs.queues import HOUR, Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from retention import accounts
from retention.archive import archives_verify
from retention.maintenance import comprehensive_cleanup_start, database_maintenance
from retention.services import (
    CLEANUPS,
    RetentionRefused,
    Step,
    retention_run_start,
    retention_run_step,
)
from retention.tempfiles import temp_files_run_start, temp_files_run_step


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_cleanup", max_retries=3)
def retention_cleanup(cleanup: str, run_id: int | None = None, dry_run: bool = False) -> None:
    """Run (or go on with) cleanup ``cleanup``. Idempotent: a repeated step finds the
    rows it deleted gone and goes on from the run's last id."""
    if run_id is None:
        try:
            run_id = retention_run_start(cleanup, dry_run=dry_run).pk
        except RetentionRefused:
            return  # recorded and audited as refused; nothing to retry
    step = retention_run_step(run_id, cleanup)
    if step == Step.MORE:
        enqueue_on_commit(retention_cleanup, cleanup, run_id, dry_run)
    elif step == Step.FINISHED and CLEANUPS[cleanup].then:
        enqueue_on_commit(retention_cleanup, CLEANUPS[cleanup].then, None, dry_run)


SCHEDULES = [
    ScheduleSpec(name="chat-cleanup", actor_name="retention_cleanup", cron="0 2 * * *",
                 time_zone="UTC", kwargs={"cleanup": "chat-cleanup"},
                 description="Retention: read chat messages older than 90 days."),
    ScheduleSpec(name="audit-log-cleanup", actor_name="retention_cleanup",
                 cron="0 1 * * 0", time_zone="UTC", kwargs={"cleanup": "audit-log-cleanup"},
                 description="Retention: audit entries older than 1 year (critical ones "
                             "kept until archived)."),
    ScheduleSpec(name="session-cleanup", actor_name="retention_cleanup", cron="0 3 * * *",
                 time_zone="UTC", kwargs={"cleanup": "session-cleanup"},
                 description="Retention: sessions idle or expired for 7 days, then "
                             "revoked, inactive or expired refresh tokens."),
    ScheduleSpec(name="notification-cleanup", actor_name="retention_cleanup",
                 cron="0 4 * * *", time_zone="UTC",
                 kwargs={"cleanup": "notification-cleanup"},
                 description="Retention: read in-app notifications older than 90 days."),
]


# --- Temporary files (retention/tempfiles.py) ------------------------------------------

@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_temp_files_cleanup",
               max_retries=3)
def retention_temp_files_cleanup(run_id: int | None = None, dry_run: bool = False) -> None:
    """Run (or go on with) the temp-files cleanup. Idempotent: a repeated step goes on from
    the run's recorded position, and finds what it deleted gone."""
    if run_id is None:
        try:
            run_id = temp_files_run_start(dry_run=dry_run).pk
        except RetentionRefused:
            return  # recorded and audited as refused; nothing to retry
    if temp_files_run_step(run_id) == Step.MORE:
        enqueue_on_commit(retention_temp_files_cleanup, run_id, dry_run)


SCHEDULES.append(
    ScheduleSpec(name="temp-files-cleanup", actor_name="retention_temp_files_cleanup",
                 cron="0 5 * * *", time_zone="UTC",
                 description="Retention: temporary files, objects and incomplete multipart "
                             "uploads older than 24 hours."))


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_backup_verification",
               time_limit=HOUR)
def retention_backup_verification() -> None:
    """Re-check recent cold-storage archives against their manifests; alert on a mismatch."""
    archives_verify()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_database_maintenance",
               time_limit=2 * HOUR, max_retries=1)
def retention_database_maintenance() -> None:
    """Expired tokens out, then VACUUM (ANALYZE) of the tables the cleanups touch."""
    database_maintenance()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_comprehensive_cleanup")
def retention_comprehensive_cleanup() -> None:
    """The monthly catch-up: every cleanup once more, and the report to staff."""
    _, cleanups = comprehensive_cleanup_start()
    for name in cleanups:
        enqueue_on_commit(retention_cleanup, name, None, False)
    enqueue_on_commit(retention_temp_files_cleanup, None, False)
    enqueue_on_commit(retention_inactive_accounts, None, False)


SCHEDULES += [
    ScheduleSpec(name="backup-verification", actor_name="retention_backup_verification",
                 cron="0 1 * * *", time_zone="America/Toronto",
                 description="Retention: re-check recent archives against their manifests."),
    ScheduleSpec(name="database-maintenance", actor_name="retention_database_maintenance",
                 cron="0 2 * * 0", time_zone="UTC",
                 description="Retention: expired tokens removed, VACUUM (ANALYZE) of the "
                             "cleaned tables."),
    ScheduleSpec(name="comprehensive-cleanup", actor_name="retention_comprehensive_cleanup",
                 cron="0 2 1 * *", time_zone="America/Toronto",
                 description="Retention: every cleanup's catch-up and the monthly report."),
]


# --- Inactive accounts (retention.accounts) ------------------------------------------------


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_inactive_accounts",
               max_retries=3)
def retention_inactive_accounts(run_id: int | None = None, dry_run: bool = False) -> None:
    """Run (or go on with) the inactive-accounts workflow: notices, cancellations,
    deletions. Idempotent: each user's outcome is decided again under its row lock."""
    if run_id is None:
        try:
            run_id = accounts.inactive_accounts_run_start(dry_run=dry_run).pk
        except RetentionRefused:
            return  # recorded and audited as refused; nothing to retry
    if accounts.inactive_accounts_run_step(run_id) == Step.MORE:
        enqueue_on_commit(retention_inactive_accounts, run_id, dry_run)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="retention_inactive_account_review",
               max_retries=1, time_limit=10 * 60 * 1000)
def retention_inactive_account_review() -> None:
    """Email staff the weekly review of inactive accounts (counts and user ids)."""
    accounts.inactive_accounts_review_send()


SCHEDULES += [
    ScheduleSpec(name="inactive-accounts", actor_name="retention_inactive_accounts",
                 cron="0 0 1 * *", time_zone="UTC",
                 description="Retention: accounts inactive for 2 years get a notice; 30 "
                             "days later, still inactive, their personal data is removed."),
    ScheduleSpec(name="inactive-account-review",
                 actor_name="retention_inactive_account_review", cron="0 4 * * 0",
                 time_zone="America/Toronto",
                 description="Retention: weekly email to staff of inactive-account "
                             "candidates (counts and user ids)."),
]
