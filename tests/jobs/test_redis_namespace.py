"""Every Redis key under DRAMATIQ_NAMESPACE: two deployments on one Redis database share
no leader lock, tick, run lock, failure streak, statistic or rate limit."""

import pytest
from django.core import mail

from jobs.models import Schedule
from jobs.monitoring import stats
from jobs.queues import PermanentError, Queue, jobsite_actor
from jobs.ratelimit import RateLimit, RateLimitExceeded, rate_limit_hit
from jobs.scheduling.scheduler import LeaderLock, SchedulerRunner, fire_schedule
from jobs.scheduling.services import schedule_enqueue
from tests.conftest import drain

SHARED = RateLimit(purpose="test-namespace", limit=1, period_seconds=60)


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="test_namespace_critical", critical=True)
def critical_fails() -> None:
    raise PermanentError("refused")


def test_two_namespaces_never_share_a_leader_lock_or_a_limit(settings, redis_client):
    # Given deployment A holding the leader lock and its user's one allowed hit
    settings.DRAMATIQ_NAMESPACE = "deploy-a"
    a_lock = LeaderLock(ttl_seconds=5)
    assert a_lock.acquire()
    rate_limit_hit(SHARED, 7)
    with pytest.raises(RateLimitExceeded):
        rate_limit_hit(SHARED, 7)

    # When deployment B, on the same Redis database, asks for the same
    settings.DRAMATIQ_NAMESPACE = "deploy-b"
    b_lock = LeaderLock(ttl_seconds=5)

    # Then B leads its own schedulers and its user has their own allowance
    assert b_lock.acquire()
    assert rate_limit_hit(SHARED, 7) == 0
    assert a_lock.held() and b_lock.held()
    names = sorted(k.decode() for k in redis_client.keys("*"))
    assert names and all(n.startswith(("deploy-a:", "deploy-b:")) for n in names), names
    a_lock.release()
    b_lock.release()


@pytest.mark.django_db(transaction=True)
def test_every_key_the_platform_writes_is_under_its_namespace(broker, worker, redis_client,
                                                                settings):
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    mail.outbox = []
    # Given the platform at work: a scheduler's heartbeat, leadership and tick claim, a
    # scheduled run (run lock), a critical job failing (failure streak), a rate limit,
    # job statistics and the worker registry
    schedule = Schedule.objects.create(name="prune", actor_name="schedule_executions_prune",
                                       cron="* * * * *")
    runner = SchedulerRunner(sync_seconds=1, lock_ttl_seconds=5)
    runner._beat()
    assert runner.lock.acquire()
    fire_schedule(schedule.pk, "2026-12-01T10:00:00+00:00")
    schedule_enqueue(schedule=schedule)
    critical_fails.send()
    rate_limit_hit(SHARED, 1)
    drain(broker, worker)
    stats.recorder.flush()
    runner.lock.release()

    # Then every key in the Redis database starts with this deployment's namespace
    names = sorted(k.decode() for k in redis_client.keys("*"))
    prefix = settings.DRAMATIQ_NAMESPACE + ":"
    assert len(mail.outbox) == 1  # the streak started
    assert any(":failure-streak:" in n for n in names)
    assert any(":schedule:" in n and ":tick:" in n for n in names)
    assert any(n.endswith(":scheduler:heartbeat") for n in names)
    assert any(":ratelimit:" in n for n in names)
    assert any(":stats:" in n for n in names)
    assert [n for n in names if not n.startswith(prefix)] == []
    assert prefix == f"{broker.namespace}:"  # the broker's own keys, too
