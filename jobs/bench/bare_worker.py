"""The bare baseline's worker module: ``dramatiq jobs.bench.bare_worker``."""

import os
import time

import dramatiq
import redis

from jobs.bench.bare import ACTOR_NAME, QUEUE, make_broker
from jobs.bench.timings import record

_url = os.environ["BENCH_REDIS_URL"]
broker = make_broker(_url, os.environ["BENCH_NAMESPACE"])
dramatiq.set_broker(broker)
client = redis.Redis.from_url(_url)


@dramatiq.actor(actor_name=ACTOR_NAME, queue_name=QUEUE, broker=broker)
def bench_noop_bare(run_id: str, enqueued_at: float) -> None:
    record(client, run_id, enqueued_at, time.time())
