"""Notification actors. Thin: ids in, one service call."""

from jobs.middleware.attempts import current_attempt
from jobs.queues import Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from jobs.stateful import stateful_actor
from notifications.services import campaigns, push
from notifications.services.delivery import email_deliver, email_retry_prepare, emails_unfinished
from notifications.services.digest import daily_digest_send


@jobsite_actor(queue=Queue.EMAILS, actor_name="send_email_task")
def send_email_task(email_log_id: int) -> None:
    attempt = current_attempt()
    email_deliver(email_log_id=email_log_id,
                  final_attempt=attempt is None or attempt.final,
                  message_id=attempt.message_id if attempt else "")


@jobsite_actor(queue=Queue.PUSH, actor_name="send_push_task")
def send_push_task(push_log_id: int) -> None:
    attempt = current_attempt()
    push.push_deliver(push_log_id=push_log_id, final_attempt=attempt is None or attempt.final,
                      message_id=attempt.message_id if attempt else "")


@jobsite_actor(queue=Queue.PUSH, actor_name="push_campaign_plan", time_limit=5 * 60 * 1000)
def push_campaign_plan(campaign_id: int) -> None:
    """One chunk of a campaign's recipients; re-enqueues itself until all are planned."""
    campaigns.push_campaign_plan(campaign_id=campaign_id)


@jobsite_actor(queue=Queue.PUSH, actor_name="push_batch_send")
def push_batch_send(campaign_id: int, number: int) -> None:
    attempt = current_attempt()
    campaigns.push_batch_send(campaign_id=campaign_id, number=number,
                              final_attempt=attempt is None or attempt.final,
                              message_id=attempt.message_id if attempt else "")


# Each email row, push row and campaign batch is the truth about its work: lost messages
# are re-driven from it, a retry from the failed-job list puts it back (jobs.stateful).
stateful_actor(send_email_task, unfinished=emails_unfinished, prepare_retry=email_retry_prepare)
stateful_actor(send_push_task, unfinished=push.pushes_unfinished,
               prepare_retry=push.push_retry_prepare)
stateful_actor(push_batch_send, unfinished=campaigns.batches_unfinished,
               prepare_retry=campaigns.batch_retry_prepare)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="notifications_daily_digest",
               max_retries=1, time_limit=30 * 60 * 1000)
def notifications_daily_digest() -> None:
    daily_digest_send()


SCHEDULES = [
    ScheduleSpec(
        name="notifications-daily-digest",
        actor_name="notifications_daily_digest",
        cron="0 6 * * *",
        time_zone="America/Toronto",
        description="Daily email digest of unread notifications (opted-in users).",
    ),
]
