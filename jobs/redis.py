"""Jobsite's own Redis client: the same connection options as the broker."""

from functools import lru_cache

import redis
from django.conf import settings


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    """A process-wide client on ``REDIS_URL`` (thread-safe connection pool)."""
    return redis.Redis(**settings.REDIS_OPTIONS)
