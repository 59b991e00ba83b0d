"""The benchmark's no-op actor, through the full Jobsite middleware stack.

Discovered by django-dramatiq (``DRAMATIQ_AUTODISCOVER_MODULES`` lists ``bench.actors``)
so the production worker groups can run it. It only ever receives messages that
``manage.py benchjobs`` sends.
"""

import time

from jobs.bench.timings import record
from jobs.queues import Queue, jobsite_actor
from jobs.redis import get_redis


@jobsite_actor(queue=Queue.EMAILS, actor_name="bench_noop", max_retries=0)
def bench_noop(run_id: str, enqueued_at: float) -> None:
    record(get_redis(), run_id, enqueued_at, time.time())
