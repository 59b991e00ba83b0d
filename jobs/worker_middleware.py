"""Dramatiq middleware: execution log, failed-job capture and failure-streak alerts.

Place ``JobExecution`` FIRST in ``DRAMATIQ_MIDDLEWARE``. Dramatiq calls ``before_*`` hooks
in list order and ``after_*`` hooks in reverse, so being first means it times the whole
attempt (AgeLimit may skip a message in its own ``before_process_message``) and sees the
message after Retries has decided whether it will be retried (``message.failed``).

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
import threading
import time
from datetime import UTC, datetime

from django.db import close_old_connections, connections
from dramatiq import Middleware
from dramatiq.common import q_name
from dramatiq.errors import ActorNotFound

from jobs.logging import buffer_log_handlers, flush_log_handlers, lean_log_records

logger = logging.getLogger("jobs.execution")
capture_logger = logging.getLogger("jobs.failures")


class Outcome:
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"
    FAILED = "failed"
    SKIPPED = "skipped"


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
    def __init__(self) -> None:
        # before/after_process_message of one attempt run on the same worker thread.
        self._attempts = threading.local()

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
        self._attempts.current = (
            message.message_id, time.monotonic(), message.options.get("retries", 0) + 1
        )

    def _finish_attempt(self, message) -> tuple[int, int]:
        """(duration in ms, attempt number) of the attempt this thread is running."""
        current = getattr(self._attempts, "current", None)
        if current is None or current[0] != message.message_id:
            return 0, message.options.get("retries", 0) + 1
        _, started, attempt = current
        return int((time.monotonic() - started) * 1000), attempt

    def _log(self, message, outcome: str) -> None:
        duration_ms, attempt = self._finish_attempt(message)
        logger.log(_LEVELS[outcome], "job %s", outcome, extra={
            "actor": message.actor_name,
            "queue": q_name(message.queue_name),
            "message_id": message.message_id,
            "attempt": attempt,
            "duration_ms": duration_ms,
            "outcome": outcome,
        })

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if exception is None:
            outcome = Outcome.SUCCEEDED
        elif message.failed:
            outcome = Outcome.FAILED
        else:
            outcome = Outcome.RETRYING
        self._log(message, outcome)
        if outcome == Outcome.SUCCEEDED:
            self._end_streak(broker, message)

    def after_skip_message(self, broker, message) -> None:
        self._log(message, Outcome.SKIPPED)

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
        _, attempt = self._finish_attempt(message)
        try:
            failed_job = failed_job_record(
                message_id=message.message_id,
                actor_name=message.actor_name,
                queue_name=q_name(message.queue_name),
                args=message.args,
                kwargs=message.kwargs,
                options=message.options,
                exception=exception,
                attempts=attempt if not isinstance(exception, ActorNotFound) else 0,
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


class DatabaseConnections(Middleware):
    """Django's request-end connection housekeeping, once per job.

    After every attempt (run or skipped) ``close_old_connections`` closes a connection
    that had errors or outlived ``CONN_MAX_AGE``, and re-arms Django's health check
    (``CONN_HEALTH_CHECKS``): the next job's first query checks the connection before
    using it, so one that died while the worker was idle is replaced, not failed on.
    django-dramatiq's ``DbConnectionsMiddleware`` does the same before each attempt as
    well; after-only saves that second pass per job, and misses nothing the health check
    does not catch (an over-age connection is closed at the end of the job that used it).
    """

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        close_old_connections()

    def after_skip_message(self, broker, message) -> None:
        close_old_connections()

    def before_worker_thread_shutdown(self, broker, thread) -> None:
        # Connections are per thread: close this thread's as it stops.
        connections.close_all()
