"""Dramatiq middleware feeding the job statistics (``jobs.monitoring.stats``) and, in
worker processes with ``WORKER_METRICS_PORT`` set, their own Prometheus series."""

import logging

import dramatiq
from dramatiq.middleware import Middleware

from jobs.middleware.attempts import Outcome, attempt_finish, attempt_of
from jobs.monitoring import broker_state, stats
from jobs.monitoring.metrics import (
    WorkerPrometheus,
    worker_metrics_enabled,
    worker_metrics_exporter,
)

logger = logging.getLogger(__name__)

_EVENTS = {
    Outcome.SUCCEEDED: stats.Event.SUCCEEDED,
    Outcome.RETRYING: stats.Event.RETRIED,
    Outcome.FAILED: stats.Event.FAILED,
    Outcome.SKIPPED: stats.Event.SKIPPED,
}


class JobStatsMiddleware(Middleware):
    """Record every message's outcome and timings.

    Before ``Retries`` in ``DRAMATIQ_MIDDLEWARE`` (check ``jobs.E002``): Dramatiq runs
    ``after_*`` hooks in reverse order, so its after-hooks run once ``Retries`` has decided
    whether a failed message is retried or failed for good. Timing and outcome come from
    the attempt ``JobExecution`` started (``jobs.middleware.attempts``), the same one the
    execution log reports.

    Per message: an in-memory counter bump on enqueue, one at start, one at the end, and
    one on dead-lettering; Redis sees them in batches from the recorder's flush thread.
    """

    def __init__(self) -> None:
        self.recorder = stats.recorder
        self._prometheus: WorkerPrometheus | None = None

    # -- processes ---------------------------------------------------------------------

    @property
    def forks(self):
        return [worker_metrics_exporter] if worker_metrics_enabled() else []

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        # Only `dramatiq`/`rundramatiq` worker processes emit this.
        if worker_metrics_enabled():
            self._prometheus = WorkerPrometheus.create()

    def after_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.recorder.is_worker = True
        self.recorder.ensure_running()
        broker_id = getattr(broker, "broker_id", None)
        if broker_id:
            queues = worker.consumer_whitelist or broker.get_declared_queues()
            try:
                broker_state.worker_register(
                    broker_id=broker_id, queues=[q for q in queues if not q.endswith(".DQ")])
            except Exception:  # monitoring must never stop a worker from starting
                logger.warning("Worker could not register for monitoring", exc_info=True)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        self.recorder.is_worker = False
        try:
            self.recorder.flush()
            self.recorder.forget_process()
            if getattr(broker, "broker_id", None):
                broker_state.worker_unregister(broker_id=broker.broker_id)
        except Exception:
            logger.warning("Job statistics could not be flushed at worker shutdown",
                           exc_info=True)
        if self._prometheus is not None:
            self._prometheus.mark_process_dead()

    # -- messages ----------------------------------------------------------------------

    def after_enqueue(self, broker, message, delay) -> None:
        options = message.options
        # A retry was already counted as "retried" when its run failed, and a delayed
        # message moving from the delay queue to its queue (eta set, no delay) is the
        # same job: count a job once, when first sent.
        if options.get("retries") or (delay is None and "eta" in options):
            return
        self.recorder.record(message.queue_name, message.actor_name, stats.Event.ENQUEUED)
        if self._prometheus is not None:
            self._prometheus.event(message.queue_name, message.actor_name,
                                   stats.Event.ENQUEUED)

    def before_process_message(self, broker, message) -> None:
        self.recorder.started(message.queue_name, message.actor_name)
        if self._prometheus is not None:
            self._prometheus.in_progress.labels(message.queue_name, message.actor_name).inc()

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        self._finish(message, exception=exception, skipped=False)

    def after_skip_message(self, broker, message) -> None:
        self._finish(message, exception=None, skipped=True)

    def after_nack(self, broker, message) -> None:
        self.recorder.record(message.queue_name, message.actor_name, stats.Event.DEAD_LETTERED)
        if self._prometheus is not None:
            self._prometheus.event(message.queue_name, message.actor_name,
                                   stats.Event.DEAD_LETTERED)

    def _finish(self, message, *, exception, skipped: bool) -> None:
        queue, actor = message.queue_name, message.actor_name
        timed = attempt_of(message) is not None
        attempt = attempt_finish(message, exception=exception, skipped=skipped)
        event = _EVENTS[attempt.outcome]
        if not timed:  # processing began before the middleware was installed
            self.recorder.record(queue, actor, event)
            return
        self.recorder.record(queue, actor, event, run_ms=attempt.run_ms,
                             wait_ms=attempt.wait_ms, running=-1)
        if self._prometheus is not None:
            self._prometheus.in_progress.labels(queue, actor).dec()
            self._prometheus.event(queue, actor, event)
            if attempt.run_ms is not None:
                self._prometheus.duration.labels(queue, actor).observe(attempt.run_ms / 1000)
