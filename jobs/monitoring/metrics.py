"""Prometheus metrics of the job platform.

``jobs.middleware.stats.JobStatsMiddleware`` sits on the Dramatiq broker of every process
(web and workers) and feeds ``jobs.monitoring.stats.recorder``: that is the one source of
truth. Two ways out to Prometheus:

- ``/metrics`` (``jobs.views.metrics``): cluster-wide counters and histograms built at
  scrape time from the Redis stats (:class:`JobStatsCollector`), plus per-queue gauges read
  from the broker's keys (:class:`QueueCollector`). Scrape one web instance; names start
  with ``jobsite_``.
- The worker exporter, when ``WORKER_METRICS_PORT`` is set: ``rundramatiq`` starts one
  extra process (a Dramatiq "fork") serving that port, which aggregates the live counters
  of all worker processes of that ``rundramatiq`` through prometheus_client's multiprocess
  mode (names start with ``jobsite_worker_``, so summing them never double counts the
  cluster-wide series), plus the same queue gauges.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from jobs.monitoring import broker_state, stats
from jobs.monitoring.buckets import BUCKETS_MS

logger = logging.getLogger(__name__)


def worker_metrics_enabled() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "WORKER_METRICS_PORT", None))


# --- Worker exporter (prometheus_client multiprocess mode) ------------------------------


def _worker_metrics_dir() -> str:
    """A directory per ``rundramatiq`` run: its worker processes and exporter are siblings,
    so the parent's pid names it, and a restart never mixes in old processes' files."""
    from django.conf import settings

    base = getattr(settings, "WORKER_METRICS_DIR", "") or os.path.join(
        tempfile.gettempdir(), "jobsite-worker-metrics"
    )
    return os.path.join(base, str(os.getppid()))


class WorkerPrometheus:
    """This worker process's Prometheus metrics, written to the multiprocess directory."""

    def __init__(self, directory: str) -> None:
        import prometheus_client as prom

        labels = ["queue_name", "actor_name"]
        self.directory = directory
        self.counters = {
            event: prom.Counter(f"jobsite_worker_jobs_{event}",
                                f"Jobs {event.replace('_', ' ')} by these worker processes.",
                                labels)
            for event in stats.EVENTS
        }
        self.duration = prom.Histogram(
            "jobsite_worker_job_duration_seconds", "Run time of jobs in these workers.",
            labels, buckets=[b / 1000 for b in BUCKETS_MS] + [float("inf")],
        )
        self.in_progress = prom.Gauge(
            "jobsite_worker_jobs_in_progress", "Jobs running now in these workers.", labels,
            multiprocess_mode="livesum",
        )

    @classmethod
    def create(cls) -> WorkerPrometheus:
        directory = _worker_metrics_dir()
        os.makedirs(directory, exist_ok=True)
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        # prometheus_client picks its value class when first imported, possibly before
        # this process knew it was a worker; pick again now that the directory is set.
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
        return cls(directory)

    def event(self, queue: str, actor: str, event: str) -> None:
        self.counters[event].labels(queue, actor).inc()

    def mark_process_dead(self) -> None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), self.directory)


def worker_metrics_exporter() -> int:
    """Dramatiq fork: serve the worker processes' metrics on ``WORKER_METRICS_PORT``."""
    import django

    django.setup()
    from django.conf import settings
    from prometheus_client import CollectorRegistry, multiprocess, start_http_server

    directory = _worker_metrics_dir()
    os.makedirs(directory, exist_ok=True)
    _remove_dead_runs(os.path.dirname(directory))
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)
    registry.register(QueueCollector())
    port = worker_metrics_port()
    try:
        server, thread = start_http_server(port, addr=settings.WORKER_METRICS_HOST,
                                           registry=registry)
    except OSError as exc:
        # The workers keep running without their exporter (dramatiq only stops on a
        # worker process's exit); say loudly why there is nothing to scrape.
        logger.error("Worker metrics exporter cannot listen on port %s (%s)", port,
                     type(exc).__name__)
        return 1
    logger.info("Worker metrics exporter listening on port %s", port)
    thread.join()
    return 0


def worker_metrics_port() -> int:
    """``WORKER_METRICS_PORT``, plus the worker group's position in ``WORKER_GROUPS`` when
    started by ``runworkergroup`` (high +0, push +1, images +2, batch +3), so the groups of
    one machine never compete for a port."""
    from django.conf import settings

    from jobs.queues import WORKER_GROUPS

    group = os.environ.get("JOBSITE_WORKER_GROUP", "")
    offset = list(WORKER_GROUPS).index(group) if group in WORKER_GROUPS else 0
    return int(settings.WORKER_METRICS_PORT) + offset


def _remove_dead_runs(base: str) -> None:
    for name in os.listdir(base):
        if name.isdigit() and not _pid_alive(int(name)):
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- Collectors for /metrics --------------------------------------------------------------

_COUNTER_HELP = {
    "enqueued": "Jobs sent (retries not counted again).",
    "succeeded": "Jobs whose run succeeded.",
    "failed": "Jobs that failed for good (no retry left, or a permanent error).",
    "retried": "Runs that raised and were scheduled for a retry.",
    "dead_lettered": "Messages moved to the dead-letter queue.",
    "skipped": "Messages skipped by a middleware (e.g. too old).",
}


def _histogram_buckets(counts: list[int]) -> list[tuple[str, float]]:
    cumulative = 0
    result = []
    for bound, count in zip(list(BUCKETS_MS) + [None], counts, strict=False):
        cumulative += count
        result.append(("+Inf" if bound is None else str(bound / 1000), float(cumulative)))
    return result


class JobStatsCollector(Collector):
    """Cluster-wide job counters, histograms and in-progress gauges from the Redis stats."""

    def collect(self) -> Iterator:
        totals = stats.totals()
        labels = ["queue_name", "actor_name"]
        for event in stats.EVENTS:
            family = CounterMetricFamily(f"jobsite_jobs_{event}", _COUNTER_HELP[event],
                                         labels=labels)
            for (queue, actor), counts in sorted(totals.items()):
                family.add_metric([queue, actor], getattr(counts, event))
            yield family
        for name, help_text, attr, sum_attr in (
            ("jobsite_job_duration_seconds", "Run time of jobs.", "run_buckets",
             "run_ms_sum"),
            ("jobsite_job_wait_seconds", "Time jobs waited in their queue before running.",
             "wait_buckets", "wait_ms_sum"),
        ):
            family = HistogramMetricFamily(name, help_text, labels=labels)
            for (queue, actor), counts in sorted(totals.items()):
                family.add_metric([queue, actor], _histogram_buckets(getattr(counts, attr)),
                                  getattr(counts, sum_attr) / 1000)
            yield family
        running = GaugeMetricFamily("jobsite_jobs_in_progress", "Jobs running now.",
                                    labels=labels)
        for (queue, actor), count in sorted(stats.in_progress().items()):
            running.add_metric([queue, actor], count)
        yield running


class QueueCollector(Collector):
    """Per-queue gauges read from the Dramatiq broker's Redis keys."""

    def collect(self) -> Iterator:
        depths = broker_state.queue_depths()
        gauges = {
            "ready": GaugeMetricFamily("jobsite_queue_ready_messages",
                                       "Messages waiting to be fetched.", labels=["queue_name"]),
            "in_flight": GaugeMetricFamily("jobsite_queue_in_flight_messages",
                                           "Messages fetched by a worker, not yet acknowledged.",
                                           labels=["queue_name"]),
            "delayed": GaugeMetricFamily("jobsite_queue_delayed_messages",
                                         "Retries and delayed messages waiting for their time.",
                                         labels=["queue_name"]),
            "dead": GaugeMetricFamily("jobsite_queue_dead_messages",
                                      "Dead-lettered messages kept by the broker.",
                                      labels=["queue_name"]),
        }
        oldest = GaugeMetricFamily("jobsite_queue_oldest_message_age_seconds",
                                   "Age of the oldest ready message (0 when empty).",
                                   labels=["queue_name"])
        for queue, depth in sorted(depths.items()):
            for attr, family in gauges.items():
                family.add_metric([queue], getattr(depth, attr))
            oldest.add_metric([queue], depth.oldest_age_seconds or 0.0)
        yield from gauges.values()
        yield oldest
        workers = GaugeMetricFamily("jobsite_workers_live",
                                    "Worker processes with a fresh broker heartbeat.")
        workers.add_metric([], broker_state.live_worker_count())
        yield workers
