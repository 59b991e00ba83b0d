"""Per-message CPU cost of JobStatsMiddleware's hooks (enqueue + start + success, with the
shared attempt timing JobExecution starts), against a no-op middleware that reads the
same message attributes; then the cost of one flush.

Run: DEBUG=true DJANGO_SETTINGS_MODULE=config.settings PYTHONPATH=. \
     python bench/job_stats_middleware.py
CPU time (process_time), so other processes on the machine skew it less than wall time.
"""
import time

import django

django.setup()

import dramatiq  # noqa: E402
from dramatiq.broker import MessageProxy  # noqa: E402
from dramatiq.middleware import Middleware  # noqa: E402

from jobs.middleware.attempts import attempt_start  # noqa: E402
from jobs.middleware.stats import JobStatsMiddleware  # noqa: E402
from jobs.monitoring import stats  # noqa: E402


class Noop(Middleware):
    def after_enqueue(self, broker, m, delay):
        return m.options.get("retries"), m.queue_name, m.actor_name

    def before_process_message(self, broker, m):
        return m.options.get("eta"), m.queue_name, m.actor_name

    def after_process_message(self, broker, m, *, result=None, exception=None):
        return m.queue_name, m.actor_name


broker = dramatiq.get_broker()
N = 100_000


def run(mw):
    msgs = [
        MessageProxy(dramatiq.Message(
            queue_name="emails", actor_name="email_send", args=(i,), kwargs={}, options={},
            message_id=f"id-{i}", message_timestamp=int(time.time() * 1000)))
        for i in range(N)
    ]
    t0 = time.process_time()
    for m in msgs:
        mw.after_enqueue(broker, m, None)
        attempt_start(m)
        mw.before_process_message(broker, m)
        mw.after_process_message(broker, m, result=None)
    return (time.process_time() - t0) / N * 1e6


stats.recorder.flush()
for _ in range(3):
    base = run(Noop())
    ours = run(JobStatsMiddleware())
    print(f"no-op middleware {base:.1f} us, JobStatsMiddleware {ours:.1f} us per message"
          f" -> +{ours - base:.1f} us")
started = time.perf_counter()
written = stats.recorder.flush()
print(f"flush of {written} fields: {(time.perf_counter() - started) * 1000:.1f} ms wall "
      "(one MULTI/EXEC round trip)")
