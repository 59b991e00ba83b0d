"""The bucket layout of run-time and wait-time distributions. A leaf module: the
``JobStatHour`` model and the statistics code both build on it, neither on the other."""

# Upper bounds (inclusive, milliseconds) of the run-time and wait-time buckets. One more
# bucket after the last counts everything slower. Changing these makes older rows'
# bucket lists incompatible: add bounds only at the end.
BUCKETS_MS: tuple[int, ...] = (
    5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
    120_000, 300_000, 600_000, 1_800_000, 3_600_000,
)
BUCKET_COUNT = len(BUCKETS_MS) + 1


def empty_buckets() -> list[int]:
    """One zero count per bucket (the ``JobStatHour`` field default)."""
    return [0] * BUCKET_COUNT
