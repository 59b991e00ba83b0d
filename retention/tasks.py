"""Retention actors on the maintenance queue. Each run goes batch by batch from the last id
it reached, re-enqueueing itself, so no job holds a long transaction or runs for hours."""

from jobs.enqueue import enqueue_on_commit
from jobs.queues import Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from retention.services import (
    CLEANUPS,
    RetentionRefused,
    Step,
    retention_run_start,
    retention_run_step,
)


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


# --- Inactive accounts (retention.accounts) ------------------------------------------------

from retention import accounts  # noqa: E402


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
