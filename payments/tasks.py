"""Payment actors on the high-priority ``payments`` queue. Thin: ids in, one service call."""

from jobs.middleware.attempts import current_attempt
from jobs.queues import MINUTE, Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from jobs.stateful import stateful_actor
from payments.services.events import (
    stripe_event_process,
    stripe_event_retry_prepare,
    stripe_events_unfinished,
)


@jobsite_actor(queue=Queue.PAYMENTS, actor_name="stripe_event_process")
def stripe_event_process_task(event_id: int) -> None:
    attempt = current_attempt()
    stripe_event_process(event_id=event_id, final_attempt=attempt is None or attempt.final)


# The stored event is the truth about its processing: a lost message is re-driven from
# it, a retry from the failed-job list puts it back to received (jobs.stateful).
stateful_actor(stripe_event_process_task, unfinished=stripe_events_unfinished,
               prepare_retry=stripe_event_retry_prepare)


@jobsite_actor(queue=Queue.PAYMENTS, actor_name="payments_reconcile", time_limit=30 * MINUTE,
               max_retries=2)
def payments_reconcile() -> None:
    """Ask Stripe for events we never received and payments left pending; fix them
    through the same handlers."""
    from payments.services.reconcile import payments_reconcile as reconcile

    reconcile()


SCHEDULES = [
    ScheduleSpec(name="payments-reconcile", actor_name="payments_reconcile",
                 cron="17 * * * *", time_zone="UTC",
                 description="Payments: events Stripe sent that we missed, and payments "
                             "still pending, fixed through the event handlers."),
]


# --- Accounting ------------------------------------------------------------------------

@jobsite_actor(queue=Queue.PAYMENTS, actor_name="accounting_fees_collect",
               time_limit=10 * MINUTE, max_retries=2)
def accounting_fees_collect() -> None:
    """Post Stripe's fee of payments whose entry was posted before the fee was known."""
    from payments.services.accounting import accounting_fees_collect as collect

    collect()


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="accounting_export",
               time_limit=30 * MINUTE, max_retries=3)
def accounting_export(day: str | None = None) -> None:
    """Export the journal lines of business day ``day`` (ISO date; default: yesterday in
    the business time zone) as CSV to the archive store. Idempotent."""
    from datetime import date

    from payments.services.accounting_export import accounting_export as export
    from payments.services.accounting_export import previous_business_day

    export(day=date.fromisoformat(day) if day else previous_business_day())


SCHEDULES += [
    ScheduleSpec(name="accounting-fees", actor_name="accounting_fees_collect",
                 cron="47 * * * *", time_zone="UTC",
                 description="Accounting: Stripe's fee of payments posted without it, "
                             "asked of Stripe and posted."),
    # 03:30 in Toronto: the day is over in every Canadian time zone but Pacific's
    # (entries are dated by the business time zone, not the payer's).
    ScheduleSpec(name="accounting-export", actor_name="accounting_export",
                 cron="30 3 * * *", time_zone="America/Toronto",
                 description="Accounting: the previous Toronto day's journal lines as CSV "
                             "in the archive bucket (accounting/journal/YYYY/MM/DD.csv)."),
]
