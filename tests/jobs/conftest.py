"""Fixtures of the jobs tests: actors run by real workers, clean job statistics."""

import pytest

from jobs.monitoring import stats


@pytest.fixture
def clean_stats(redis_client):
    """Empty job statistics: nothing buffered from earlier tests, nothing in Redis."""
    stats.recorder.flush()
    redis_client.flushdb()
    yield stats.recorder
    stats.recorder.flush()


@pytest.fixture
def unreachable_broker():
    """A Jobsite broker whose Redis does not answer (nothing listens on port 1)."""
    from django.conf import settings

    from config.redis import redis_connection_options
    from jobs.broker import JobsiteRedisBroker

    broker = JobsiteRedisBroker(namespace="jobsite-test-dead", middleware=[],
                                **{**redis_connection_options(settings.REDIS_URL),
                                   "port": 1, "socket_connect_timeout": 0.2})
    broker.client.connection_pool.connection_kwargs["retry"] = None  # fail at once
    yield broker
    broker.close()
