"""The bare baseline's worker module: ``dramatiq bench.bare_worker``."""

import os
import time

import dramatiq
import redis

from bench.bare import ACTOR_NAME, QUEUE, make_broker
from bench.timings import record, timings_key

_url = os.environ["BENCH_REDIS_URL"]
broker = make_broker(_url, os.environ["BENCH_NAMESPACE"])
dramatiq.set_broker(broker)
client = redis.Redis.from_url(_url)
_timings_namespace = os.environ["BENCH_TIMINGS_NAMESPACE"]


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=QUEUE, broker=broker)
def bench_noop_bare(run_id: str, enqueued_at: float) -> None:
    record(client, timings_key(_timings_namespace, run_id), enqueued_at, time.time())
