"""Notification actors. Thin: ids in, one service call."""

from jobs.middleware.attempts import current_attempt
from jobs.queues import Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from jobs.stateful import stateful_actor
from notifications.services.delivery import email_deliver, email_retry_prepare, emails_unfinished
from notifications.services.digest import daily_digest_send


@jobsite_actor(queue=Queue.EMAILS, actor_name="send_email_task")
def send_email_task(email_log_id: int) -> None:
    attempt = current_attempt()
    email_deliver(email_log_id=email_log_id,
                  final_attempt=attempt is None or attempt.final,
                  message_id=attempt.message_id if attempt else "")


# Each email row is the truth about its email: lost messages are re-driven from it, and a
# retry from the failed-job list puts it back to queued (jobs.stateful).
stateful_actor(send_email_task, unfinished=emails_unfinished, prepare_retry=email_retry_prepare)


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
