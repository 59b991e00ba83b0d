"""Dramatiq middleware: a schedule's run does not start while its previous run executes."""

import logging
import threading

import dramatiq
from dramatiq.middleware import Middleware, SkipMessage

from jobs.redis import get_redis, schedule_run_lock_key

logger = logging.getLogger(__name__)

# The lock outlives the actor's time limit by this much, so a worker killed hard (no
# after-hook) blocks the schedule for at most time limit + margin.
LOCK_MARGIN_MS = 60_000
DEFAULT_TIME_LIMIT_MS = 600_000


class ScheduleRunLock(Middleware):
    """For messages carrying option ``schedule_id``: hold a Redis lock while the actor runs.

    Last in ``DRAMATIQ_MIDDLEWARE`` (check ``jobs.E003``), so its after-hooks run first,
    while the worker thread's database connection is still open.

    Taken in ``before_process_message`` (SET NX with TTL = time limit + margin); a message
    whose schedule is still running is skipped (``SkipMessage``) and the skip recorded as
    the schedule's outcome. Released after the message succeeds, fails, hits its time
    limit, or is skipped by a later middleware — only by the holder (token compared).
    """

    def __init__(self) -> None:
        self._locks: dict[str, object] = {}
        self._overlaps: set[str] = set()
        self._mu = threading.Lock()

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        schedule_id = message.options.get("schedule_id")
        if schedule_id is None:
            return
        actor = broker.get_actor(message.actor_name)
        limit_ms = (message.options.get("time_limit") or actor.options.get("time_limit")
                    or DEFAULT_TIME_LIMIT_MS)
        lock = get_redis().lock(schedule_run_lock_key(schedule_id),
                                timeout=(limit_ms + LOCK_MARGIN_MS) / 1000,
                                blocking=False, thread_local=False)
        if not lock.acquire(blocking=False):
            with self._mu:
                self._overlaps.add(message.message_id)
            logger.warning("previous run still executing: skipped",
                           extra={"schedule_id": schedule_id, "message_id": message.message_id})
            raise SkipMessage(f"schedule {schedule_id} is still running")
        with self._mu:
            self._locks[message.message_id] = lock
        self._record(schedule_id, message.message_id, "running")

    def after_process_message(self, broker, message, *, result=None, exception=None):
        if "schedule_id" not in message.options or self._release(message) is None:
            return
        if exception is None:
            self._record(message.options["schedule_id"], message.message_id, "succeeded")
        else:
            self._record(message.options["schedule_id"], message.message_id, "failed",
                         error=type(exception).__name__)

    def after_skip_message(self, broker, message):
        with self._mu:
            overlapped = message.message_id in self._overlaps
            self._overlaps.discard(message.message_id)
        if overlapped:
            self._record(message.options["schedule_id"], message.message_id, "skipped_overlap")
        else:
            self._release(message)  # a later middleware skipped it after we locked

    def _release(self, message) -> object | None:
        with self._mu:
            lock = self._locks.pop(message.message_id, None)
        if lock is not None:
            try:
                lock.release()
            except Exception:  # expired (time limit + margin passed) or Redis down: TTL ends it
                logger.warning("schedule run lock already gone",
                               extra={"message_id": message.message_id})
        return lock

    @staticmethod
    def _record(schedule_id: int, message_id: str, outcome: str, error: str = "") -> None:
        from jobs.scheduling.services import schedule_record_outcome

        try:
            schedule_record_outcome(schedule_id=schedule_id, message_id=message_id,
                                    outcome=outcome, error=error)
        except Exception:  # the outcome column is informational; never fail the job for it
            logger.exception("could not record schedule outcome",
                             extra={"schedule_id": schedule_id, "message_id": message_id})
