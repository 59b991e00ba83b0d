"""Per-job timings that bench actors record in Redis, shared by both no-op variants.

One list per run: ``jobsite:bench:<run id>`` of ``"wait_ms,run_ms,end_unix"`` strings.
No Django imports: the bare baseline uses it outside Django.
"""

import time

KEY_PREFIX = "jobsite:bench"
TTL_SECONDS = 3600


def timings_key(run_id: str) -> str:
    return f"{KEY_PREFIX}:{run_id}"


def record(client, run_id: str, enqueued_at: float, started_at: float) -> None:
    """Append one job's wait (enqueue → start) and run time (start → now)."""
    ended_at = time.time()
    key = timings_key(run_id)
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, f"{(started_at - enqueued_at) * 1000:.3f},"
                    f"{(ended_at - started_at) * 1000:.3f},{ended_at:.6f}")
    pipe.expire(key, TTL_SECONDS)
    pipe.execute()
