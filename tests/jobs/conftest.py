"""Fixtures of the jobs tests: actors run by real workers, clean job statistics."""

import pytest

from jobs import stats


@pytest.fixture
def clean_stats(redis_client):
    """Empty job statistics: nothing buffered from earlier tests, nothing in Redis."""
    stats.recorder.flush()
    redis_client.flushdb()
    yield stats.recorder
    stats.recorder.flush()
