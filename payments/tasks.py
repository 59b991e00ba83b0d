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
    from payments.services.disputes import dispute_notify

    dispute_notify(dispute_id=dispute_id, stage=stage)


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
