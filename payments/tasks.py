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
