"""An atomic sliding-window rate limiter in Redis, keyed by (purpose, subject).

Services call :func:`rate_limit_hit` before they enqueue work on someone's behalf (image
uploads per user per hour, emails per user per hour, pushes per user per hour). The check
and the count are one Lua script, so concurrent callers can never exceed the limit
between them. Over the limit the caller gets :class:`RateLimitExceeded`; views turn it
into HTTP 429 with ``Retry-After`` (``jobs.http``: the per-endpoint limits, and
``RateLimitMiddleware`` for a service's limit reached inside a view).
"""

import hashlib
import math
import uuid
from dataclasses import dataclass
from functools import lru_cache

import redis
from redis.commands.core import Script

from jobs.redis import get_redis, key

# KEYS[1]: the window's sorted set. ARGV: window ms, limit, a unique member.
# Returns {allowed (1/0), remaining, retry_after_ms}. Uses the server's clock, so every
# process agrees on "now".
_SLIDING_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
local count = redis.call('ZCARD', KEYS[1])
if count < limit then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], window)
  return {1, limit - count - 1, 0}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] == nil then
  -- limit 0: nothing ever frees a slot; say "a whole window".
  return {0, 0, window}
end
return {0, 0, tonumber(oldest[2]) + window - now}
"""


@dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` hits per ``period_seconds`` for one subject, for one purpose."""

    purpose: str
    limit: int
    period_seconds: int

    def __post_init__(self) -> None:
        if self.limit < 0 or self.period_seconds < 1:
            raise ValueError(
                f"RateLimit {self.purpose!r}: limit must be >= 0 and period_seconds >= 1"
            )


class RateLimitExceeded(Exception):
    """The subject has used its allowance; ``retry_after`` is whole seconds to wait."""

    def __init__(self, purpose: str, retry_after: int) -> None:
        super().__init__(f"Rate limit for {purpose} reached; retry after {retry_after} s.")
        self.purpose = purpose
        self.retry_after = retry_after


@lru_cache(maxsize=4)
def _script(client: redis.Redis) -> Script:
    # One Script per client: it hashes the source once and runs by EVALSHA.
    return client.register_script(_SLIDING_WINDOW)


def _key(purpose: str, subject: str | int) -> str:
    # Subjects may be addresses; only a digest of them reaches Redis.
    digest = hashlib.sha256(f"{purpose}:{subject}".encode()).hexdigest()[:32]
    return key("ratelimit", purpose, digest)


def rate_limit_hit(limit: RateLimit, subject: str | int) -> int:
    """Count one hit for ``subject`` against ``limit``.

    Returns:
      How many hits remain in the current window.

    Raises:
      RateLimitExceeded: the window is full; nothing was counted.
    """
    script = _script(get_redis())
    allowed, remaining, retry_after_ms = script(
        keys=[_key(limit.purpose, subject)],
        args=[limit.period_seconds * 1000, limit.limit, uuid.uuid4().hex],
    )
    if not allowed:
        raise RateLimitExceeded(limit.purpose, max(1, math.ceil(int(retry_after_ms) / 1000)))
    return int(remaining)


def rate_limit_reset(limit: RateLimit, *subjects: str | int) -> None:
    """Forget the hits of ``subjects`` (staff lifting a block, tests, the benchmark)."""
    keys = [_key(limit.purpose, subject) for subject in subjects]
    client = get_redis()
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start:start + 1000])


def rate_limit_hit_many(limit: RateLimit, subjects: list[str | int]) -> list[bool]:
    """:func:`rate_limit_hit` for many subjects in one round trip (a campaign's chunk of
    users): for each, whether the hit was allowed (and counted)."""
    if not subjects:
        return []
    client = get_redis()
    script = _script(client)
    pipe = client.pipeline(transaction=False)
    for subject in subjects:
        script(keys=[_key(limit.purpose, subject)],
               args=[limit.period_seconds * 1000, limit.limit, uuid.uuid4().hex], client=pipe)
    return [bool(int(reply[0])) for reply in pipe.execute()]
