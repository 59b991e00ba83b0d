"""Dramatiq middleware: execution log, failed-job capture and failure-streak alerts.

``JobExecution`` is FIRST in ``DRAMATIQ_MIDDLEWARE`` (check ``jobs.E001``). Dramatiq calls
``before_*`` hooks in list order and ``after_*`` hooks in reverse, so being first means it
starts each attempt's timing (``jobs.middleware.attempts``) before any other middleware
can skip the message, and sees the message after Retries has decided whether it will be
retried (``message.failed``).

- One JSON log line per attempt on ``jobs.execution``: actor, queue, message id, attempt,
  duration, outcome (succeeded / retrying / failed / skipped). Never arguments.
- A message that failed for good (retries exhausted, ``PermanentError`` or another
  ``throws`` exception, age limit, unknown actor) is rejected by the worker, which moves it
  to Redis's dead-letter set; ``after_nack`` is that one path, and records it as a
  ``FailedJob``.
- Critical actors (``critical=True``) and scheduled messages (option ``schedule_id``) alert
  staff once per failure streak; their next success ends it.
"""

import logging
from datetime import UTC, datetime

from django.db import close_old_connections
from dramatiq import Middleware
from dramatiq.common import q_name
from dramatiq.errors import ActorNotFound

from jobs.logging import buffer_log_handlers, flush_log_handlers, lean_log_records
from jobs.middleware.attempts import Outcome, attempt_finish, attempt_of, attempt_start

logger = logging.getLogger("jobs.execution")
capture_logger = logging.getLogger("jobs.failures")

_LEVELS = {
    Outcome.SUCCEEDED: logging.INFO,
    Outcome.RETRYING: logging.WARNING,
    Outcome.FAILED: logging.ERROR,
    Outcome.SKIPPED: logging.WARNING,
}


def _millis_to_datetime(value: object) -> datetime | None:
    if isinstance(value, int | float) and value > 0:
        return datetime.fromtimestamp(value / 1000, UTC)
    return None


class JobExecution(Middleware):
    @property
    def actor_options(self) -> set[str]:
        return {"critical"}

    # --- timing and the execution log ---------------------------------------------

    def before_enqueue(self, broker, message, delay) -> None:
        # Retries stamps ``requeue_timestamp`` on every failure; keep the first one, so a
        # failed job knows when its trouble started. ``message`` is the copy being sent.
        if message.options.get("retries") and "first_failed_at" not in message.options:
            first = message.options.get("requeue_timestamp")
            if first is not None:
                message.options["first_failed_at"] = first

    def before_process_message(self, broker, message) -> None:
        attempt_start(message)

    @staticmethod
    def _log(message, attempt) -> None:
        outcome = attempt.outcome
        logger.log(_LEVELS[outcome], "job %s", outcome, extra={
            "actor": message.actor_name,
            "queue": q_name(message.queue_name),
            "message_id": message.message_id,
            "attempt": attempt.number,
            "duration_ms": int(attempt.run_ms or 0),
            "outcome": outcome.value,
        })

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        attempt = attempt_finish(message, exception=exception)
        self._log(message, attempt)
        if attempt.outcome == Outcome.SUCCEEDED:
            self._end_streak(broker, message)

    def after_skip_message(self, broker, message) -> None:
        self._log(message, attempt_finish(message, skipped=True))

    def after_process_boot(self, broker) -> None:
        # Only dramatiq worker processes emit this: they log one line per job attempt, tens
        # of thousands a minute, so they write INFO lines in batches (LOG_FLUSH_SECONDS)
        # and skip the record attributes no Jobsite formatter prints.
        buffer_log_handlers()
        lean_log_records()

    def after_worker_shutdown(self, broker, worker) -> None:
        # Log lines are written in batches (jobs.logging.BufferedStreamHandler), and a
        # dramatiq worker process exits without running atexit's logging.shutdown: write
        # the last batch while the stream (the CLI's pipe) is still open.
        flush_log_handlers()

    # --- failed jobs -----------------------------------------------------------------

    def after_nack(self, broker, message) -> None:
        from jobs.services import failed_job_record, failure_streak_record_failure

        exception = getattr(message, "_exception", None)
        attempt = attempt_of(message)
        number = attempt.number if attempt is not None else message.options.get("retries", 0) + 1
        try:
            failed_job = failed_job_record(
                message_id=message.message_id,
                actor_name=message.actor_name,
                queue_name=q_name(message.queue_name),
                args=message.args,
                kwargs=message.kwargs,
                options=message.options,
                exception=exception,
                attempts=number if not isinstance(exception, ActorNotFound) else 0,
                first_failed_at=_millis_to_datetime(message.options.get("first_failed_at")),
            )
            failure_streak_record_failure(
                failed_job=failed_job, critical=self._is_critical(broker, message)
            )
        except Exception:
            # The message is in Redis's dead-letter set all the same; say so loudly.
            capture_logger.exception("Could not record a failed job", extra={
                "actor": message.actor_name, "queue": q_name(message.queue_name),
                "message_id": message.message_id,
            })
        finally:
            close_old_connections()

    # --- failure streaks ---------------------------------------------------------------

    @staticmethod
    def _is_critical(broker, message) -> bool:
        actor = broker.actors.get(message.actor_name)  # None: an unknown actor
        return actor is not None and bool(actor.options.get("critical"))

    def _end_streak(self, broker, message) -> None:
        critical = self._is_critical(broker, message)
        schedule_id = message.options.get("schedule_id")
        if not critical and schedule_id is None:
            return  # the hot path: ordinary jobs touch neither Redis nor the database here
        from jobs.services import failure_streak_end

        try:
            failure_streak_end(actor_name=message.actor_name, schedule_id=schedule_id,
                               critical=critical)
        except Exception:
            capture_logger.exception("Could not end a failure streak", extra={
                "actor": message.actor_name, "message_id": message.message_id,
            })
