"""Notification actors. Thin: ids in, one service call."""

from dramatiq.middleware import CurrentMessage

from jobs.queues import Queue, jobsite_actor
from jobs.schedules import ScheduleSpec
from notifications import services


def _attempt(actor) -> tuple[str, bool]:
    """The current message's id, and whether it has no retries left (then the row can
    say ``failed``)."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return "", True
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", 0))
    return message.message_id, message.options.get("retries", 0) >= max_retries


@jobsite_actor(queue=Queue.EMAILS, actor_name="send_email_task")
def send_email_task(email_log_id: int) -> None:
    message_id, final_attempt = _attempt(send_email_task)
    services.email_deliver(email_log_id=email_log_id, final_attempt=final_attempt,
                           message_id=message_id)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="notifications_daily_digest",
               max_retries=1, time_limit=30 * 60 * 1000)
def notifications_daily_digest() -> None:
    services.daily_digest_send()


SCHEDULES = [
    ScheduleSpec(
        name="notifications-daily-digest",
        actor_name="notifications_daily_digest",
        cron="0 6 * * *",
        time_zone="America/Toronto",
        description="Daily email digest of unread notifications (opted-in users).",
    ),
]
