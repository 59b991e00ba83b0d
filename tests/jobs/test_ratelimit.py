"""The job-creation rate limiter (jobs.ratelimit) on real Redis, and its HTTP 429."""

import json
import threading

import pytest
from django.http import HttpRequest, JsonResponse
from django.urls import path

from jobs.ratelimit import RateLimit, RateLimitExceeded, _key, rate_limit_hit, rate_limit_reset
from jobs.redis import key

UPLOADS = RateLimit(purpose="test-uploads", limit=3, period_seconds=60)


def _server_ms(client) -> int:
    seconds, micros = client.time()
    return seconds * 1000 + micros // 1000


def _age_hits(client, limit: RateLimit, subject, *ages_ms: int) -> None:
    """Move the subject's hits into the past: the i-th oldest hit becomes ages_ms[i] old."""
    key = _key(limit.purpose, subject)
    members = client.zrange(key, 0, -1)
    now = _server_ms(client)
    client.zadd(key, {member: now - age for member, age in zip(members, ages_ms, strict=True)})


def test_allows_the_limit_then_refuses_until_the_oldest_hit_leaves_the_window(redis_client):
    # Given three hits allowed, counting down
    assert [rate_limit_hit(UPLOADS, 42) for _ in range(3)] == [2, 1, 0]
    # made 45, 30 and 10 seconds ago
    _age_hits(redis_client, UPLOADS, 42, 45_000, 30_000, 10_000)

    # When a fourth comes, then it is refused until the oldest is 60 s old: 15 s from now
    with pytest.raises(RateLimitExceeded) as refused:
        rate_limit_hit(UPLOADS, 42)
    assert refused.value.retry_after == 15
    assert refused.value.purpose == "test-uploads"
    # and the refusal was not counted
    assert redis_client.zcard(_key(UPLOADS.purpose, 42)) == 3

    # When the oldest hit has left the window, then exactly one more is allowed
    _age_hits(redis_client, UPLOADS, 42, 61_000, 30_000, 10_000)
    assert rate_limit_hit(UPLOADS, 42) == 0
    with pytest.raises(RateLimitExceeded) as refused:
        rate_limit_hit(UPLOADS, 42)
    assert refused.value.retry_after == 30


def test_subjects_and_purposes_are_counted_apart_and_reset(redis_client):
    for _ in range(3):
        rate_limit_hit(UPLOADS, 1)
    other_purpose = RateLimit(purpose="test-emails", limit=3, period_seconds=60)
    assert rate_limit_hit(UPLOADS, 2) == 2
    assert rate_limit_hit(other_purpose, 1) == 2
    with pytest.raises(RateLimitExceeded):
        rate_limit_hit(UPLOADS, 1)
    rate_limit_reset(UPLOADS, 1)
    assert rate_limit_hit(UPLOADS, 1) == 2


def test_subjects_are_not_stored_in_clear(redis_client):
    rate_limit_hit(UPLOADS, "gwen@example.test")
    keys = [k.decode() for k in redis_client.keys("*")]
    assert len(keys) == 1
    assert "gwen" not in keys[0]
    assert keys[0].startswith(key("ratelimit", "test-uploads", ""))


def test_a_zero_limit_refuses_everything_for_a_whole_period(redis_client):
    blocked = RateLimit(purpose="test-blocked", limit=0, period_seconds=120)
    with pytest.raises(RateLimitExceeded) as refused:
        rate_limit_hit(blocked, 7)
    assert refused.value.retry_after == 120


def test_invalid_limits_are_refused_at_definition():
    with pytest.raises(ValueError, match="limit must be >= 0"):
        RateLimit(purpose="bad", limit=-1, period_seconds=60)
    with pytest.raises(ValueError, match="period_seconds >= 1"):
        RateLimit(purpose="bad", limit=1, period_seconds=0)


def test_exactly_the_limit_is_allowed_under_eight_concurrent_callers(redis_client):
    # Given 8 threads each trying 5 hits at once against a limit of 10
    limit = RateLimit(purpose="test-concurrent", limit=10, period_seconds=60)
    start = threading.Barrier(8)
    allowed, refused = [], []
    lock = threading.Lock()

    def caller():
        start.wait()
        for _ in range(5):
            try:
                remaining = rate_limit_hit(limit, "shared-subject")
                outcome = allowed
            except RateLimitExceeded:
                remaining, outcome = None, refused
            with lock:
                outcome.append(remaining)

    threads = [threading.Thread(target=caller) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # Then exactly 10 were allowed, each seeing a distinct remaining count, 30 refused
    assert sorted(allowed) == list(range(10))
    assert len(refused) == 30
    assert redis_client.zcard(_key(limit.purpose, "shared-subject")) == 10


# --- HTTP: a view that hits the limiter, behind the project's middleware ---------------------

VIEW_LIMIT = RateLimit(purpose="test-view", limit=2, period_seconds=3600)


def limited_view(request: HttpRequest) -> JsonResponse:
    rate_limit_hit(VIEW_LIMIT, "visitor")
    return JsonResponse({"ok": True}, status=201)


urlpatterns = [path("limited", limited_view)]


@pytest.mark.urls("tests.jobs.test_ratelimit")
def test_a_view_over_the_limit_answers_429_with_retry_after(client, redis_client):
    assert client.post("/limited").status_code == 201
    assert client.post("/limited").status_code == 201

    response = client.post("/limited")

    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 3599 <= retry_after <= 3600  # the first hit is at most a second old
    assert json.loads(response.content) == {
        "error": "rate_limited", "purpose": "test-view", "retry_after": retry_after}
