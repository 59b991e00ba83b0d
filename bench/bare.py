"""The bare-Dramatiq baseline: the same no-op on a RedisBroker with no middleware.

``benchjobs`` enqueues through :func:`make_broker` and runs the worker as
``dramatiq bench.bare_worker`` (with ``BENCH_REDIS_URL`` and ``BENCH_NAMESPACE`` in
its environment). No Django, no Jobsite middleware: the same Redis server and database,
a separate namespace.
"""

from dramatiq.brokers.redis import RedisBroker

QUEUE = "bench-bare"

ACTOR_NAME = "bench_noop_bare"


def make_broker(url: str, namespace: str) -> RedisBroker:
    """The baseline's broker: Jobsite's Redis, its own namespace, no middleware at all."""
    broker = RedisBroker(url=url, namespace=namespace, middleware=[])
    broker.declare_queue(QUEUE)
    return broker
