"""Per-job timings that bench actors record in Redis, shared by both no-op variants.

One list per run: ``<namespace>:bench:<run id>`` of ``"wait_ms,run_ms,end_unix"`` strings,
under the deployment's namespace (the bare worker is told it in ``BENCH_TIMINGS_NAMESPACE``).
No Django imports: the bare baseline uses it outside Django.
"""

import time

TTL_SECONDS = 3600


def timings_key(namespace: str, run_id: str) -> str:
    return f"{namespace}:bench:{run_id}"


def record(client, key: str, enqueued_at: float, started_at: float) -> None:
    """Append one job's wait (enqueue → start) and run time (start → now) to ``key``."""
    ended_at = time.time()
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, f"{(started_at - enqueued_at) * 1000:.3f},"
                    f"{(ended_at - started_at) * 1000:.3f},{ended_at:.6f}")
    pipe.expire(key, TTL_SECONDS)
    pipe.execute()
