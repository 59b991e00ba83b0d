"""Dramatiq middleware: each worker process's maintenance thread, and the note of which
message each worker thread runs (``jobs.recovery``)."""

import logging
import threading

import dramatiq
from django.conf import settings
from dramatiq.middleware import Middleware

logger = logging.getLogger("jobs.recovery")


class WorkerRecovery(Middleware):
    """Starts :class:`jobs.recovery.Maintenance` when a worker boots (heartbeat, recovery
    of dead workers' messages, Redis data-loss check, re-drive of unfinished work), and
    notes every message a worker thread starts (:class:`jobs.recovery.RunningMarks`), so
    that a message running when its worker died counts a crash. Off when
    ``BROKER_MAINTENANCE_SECONDS`` is 0."""

    def __init__(self) -> None:
        self._maintenance = None
        self._marks = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        # Before the worker starts its threads: Dramatiq starts them, and they may take a
        # message, before it calls the after-boot hooks. A message run unmarked would not
        # count the crash it causes.
        from jobs.recovery import RunningMarks
        from jobs.redis import get_redis

        if float(settings.BROKER_MAINTENANCE_SECONDS) > 0:
            self._marks = RunningMarks(get_redis(), broker.broker_id)

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        from jobs.recovery import Maintenance

        interval = float(settings.BROKER_MAINTENANCE_SECONDS)
        if interval <= 0:
            return
        self._maintenance = Maintenance(broker, interval=interval)
        self._maintenance.start()

    def before_process_message(self, broker, message) -> None:
        marks = self._marks
        if marks is not None:
            marks.mark(threading.get_ident(), message.options["redis_message_id"])

    def before_worker_shutdown(self, broker, worker) -> None:
        if self._maintenance is not None:
            self._maintenance.stop()

    def after_worker_shutdown(self, broker, worker) -> None:
        if self._marks is None:
            return
        try:
            self._marks.client.delete(self._marks.key)
        except Exception:  # Redis away at shutdown: the key expires
            logger.warning("Could not remove this worker's running marks", exc_info=True)
