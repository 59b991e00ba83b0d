"""Payment actors on the high-priority ``payments`` queue. Thin: ids in, one service call."""

from jobs.middleware.attempts import current_attempt
from jobs.queues import MINUTE, Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from jobs.stateful import stateful_actor
from payments.services.disputes import (
    dispute_notify,
    dispute_notify_retry_prepare,
    disputes_notify_unfinished,
)
from payments.services.events import (
    stripe_event_process,
    stripe_event_retry_prepare,
    stripe_events_unfinished,
)
from payments.services.receipts import (
    receipt_deliver,
    receipt_retry_prepare,
    receipts_unfinished,
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


@jobsite_actor(queue=Queue.PAYMENTS, actor_name="receipt_deliver")
def receipt_deliver_task(receipt_id: int) -> None:
    """Store the receipt's PDF and queue the payment-confirmation email with it."""
    receipt_deliver(receipt_id=receipt_id)


# The receipt row is the truth about its delivery (issued → emailed): a lost message is
# re-driven from it, a retry from the failed-job list runs it again while it is issued.
stateful_actor(receipt_deliver_task, unfinished=receipts_unfinished,
               prepare_retry=receipt_retry_prepare)


@jobsite_actor(queue=Queue.PAYMENTS, actor_name="dispute_notify")
def dispute_notify_task(dispute_id: int, stage: str) -> None:
    """Tell staff and the order's contractor that a dispute opened or closed (once)."""
    dispute_notify(dispute_id=dispute_id, stage=stage)


# The dispute row is the truth about its notices (each stage's *_notified_at): a lost
# message is re-driven from it, a retry from the failed-job list sends what is not done.
stateful_actor(dispute_notify_task, unfinished=disputes_notify_unfinished,
               prepare_retry=dispute_notify_retry_prepare)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="disputes_evidence_reminder",
               max_retries=2)
def disputes_evidence_reminder() -> None:
    """Staff: the open disputes whose evidence is due within 3 days."""
    from payments.services.disputes import disputes_evidence_reminder as remind

    remind()


SCHEDULES = [
    ScheduleSpec(name="payments-reconcile", actor_name="payments_reconcile",
                 cron="17 * * * *", time_zone="UTC",
                 description="Payments: events Stripe sent that we missed, and payments "
                             "still pending, fixed through the event handlers."),
    ScheduleSpec(name="disputes-evidence-reminder", actor_name="disputes_evidence_reminder",
                 cron="0 8 * * *", time_zone="America/Toronto",
                 description="Payments: staff reminded of open disputes whose evidence is "
                             "due within 3 days."),
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


# --- Contractor subscriptions (payments.services.subscriptions) ----------------------------
# Batch runs on the maintenance queue (the payments queue stays free for webhooks); each
# goes chunk by chunk, re-enqueueing itself from the last id. Every change is decided under
# the subscription's lock, so a repeated run or chunk does nothing twice.

@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="subscription_dunning", max_retries=3)
def subscription_dunning(after_id: int = 0) -> None:
    """The daily dunning emails, suspensions after the grace period, and the features of
    cancelled subscriptions revoked at their period end."""
    from jobs.enqueue import enqueue_on_commit
    from payments.services.subscriptions import subscriptions_daily_run

    last = subscriptions_daily_run(after_id=after_id)
    if last is not None:
        enqueue_on_commit(subscription_dunning, last)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="subscription_renewal_reminders",
               max_retries=3)
def subscription_renewal_reminders(after_id: int = 0) -> None:
    """Renewal reminders for renewals in the next SUBSCRIPTION_REMINDER_DAYS not reminded
    yet (Stripe's invoice.upcoming sends most of them first)."""
    from jobs.enqueue import enqueue_on_commit
    from payments.services.subscriptions import subscription_renewal_reminders_send

    _, last = subscription_renewal_reminders_send(after_id=after_id)
    if last is not None:
        enqueue_on_commit(subscription_renewal_reminders, last)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="subscription_renewals", max_retries=1)
def subscription_renewals() -> None:
    """The monthly renewals report to staff (counts), and one more reminder pass."""
    from jobs.enqueue import enqueue_on_commit
    from payments.services.subscriptions import subscriptions_summary_send

    subscriptions_summary_send()
    enqueue_on_commit(subscription_renewal_reminders, 0)


SCHEDULES += [
    ScheduleSpec(name="subscription-dunning", actor_name="subscription_dunning",
                 cron="0 9 * * *", time_zone="America/Toronto",
                 description="Subscriptions: dunning emails on the configured days after a "
                             "failed renewal, features suspended after the grace period, "
                             "cancelled subscriptions' features revoked at period end."),
    ScheduleSpec(name="subscription-renewal-reminders",
                 actor_name="subscription_renewal_reminders", cron="0 6 * * *",
                 time_zone="America/Toronto",
                 description="Subscriptions: the renewal reminder for renewals in the next "
                             "7 days that Stripe's invoice.upcoming did not already cover."),
    ScheduleSpec(name="subscription-renewals", actor_name="subscription_renewals",
                 cron="0 6 1 * *", time_zone="America/Toronto",
                 description="Subscriptions: the monthly renewals report to staff (counts) "
                             "and a catch-up pass of the renewal reminders."),
]
