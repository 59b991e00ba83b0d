"""The benchmark's no-op actor, through the full Jobsite middleware stack.

Registered only where the ``bench`` app is installed (``config.settings_bench``: the
``benchjobs`` command and the worker groups it starts), on the ``emails`` queue so the
production ``high`` worker group runs it. It only ever receives messages ``benchjobs``
sends.
"""

import time

from bench.timings import record, timings_key
from jobs.queues import Queue, jobsite_actor
from jobs.redis import get_redis, namespace


@jobsite_actor(queue=Queue.EMAILS, actor_name="bench_noop", max_retries=0)
def bench_noop(run_id: str, enqueued_at: float) -> None:
    record(get_redis(), timings_key(namespace(), run_id), enqueued_at, time.time())
