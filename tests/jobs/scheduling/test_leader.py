"""Leader lock and sync details, in process on the real Redis and database."""

import dramatiq
import pytest

from jobs.models import Schedule, ScheduleOutcome
from jobs.redis import schedule_tick_key, scheduler_leader_key
from jobs.scheduling import scheduler as scheduler_module
from jobs.scheduling.scheduler import LeaderLock, SchedulerRunner, fire_schedule


def test_only_one_holder_and_only_the_holder_renews_or_releases(redis_client):
    first, second = LeaderLock(ttl_seconds=5), LeaderLock(ttl_seconds=5)

    assert first.acquire() is True
    assert second.acquire() is False
    assert second.renew() is False
    second.release()
    assert first.held() is True
    assert 0 < redis_client.pttl(scheduler_leader_key()) <= 5000

    first.release()
    assert redis_client.get(scheduler_leader_key()) is None
    assert second.acquire() is True
    second.release()


def test_lock_taken_over_after_expiry_is_lost_by_the_old_holder(redis_client):
    old = LeaderLock(ttl_seconds=5)
    assert old.acquire()
    redis_client.delete(scheduler_leader_key())  # expired while the old leader was stalled
    new = LeaderLock(ttl_seconds=5)
    assert new.acquire()

    assert old.renew() is False
    assert old.held() is False
    assert new.held() is True
    new.release()


@pytest.mark.django_db(transaction=True)
def test_a_process_that_lost_the_lock_does_not_fire(broker, redis_client, monkeypatch):
    schedule = Schedule.objects.create(name="prune", actor_name="schedule_executions_prune",
                                       cron="* * * * *")
    lost = LeaderLock(ttl_seconds=5)
    assert lost.acquire()
    redis_client.set(scheduler_leader_key(), "another-process")
    monkeypatch.setattr(scheduler_module, "_leader", lost)

    assert fire_schedule(schedule.pk) is None
    assert broker.client.hlen(f"{broker.namespace}:maintenance.msgs") == 0


@pytest.mark.django_db
def test_sync_skips_an_invalid_row_and_records_why(redis_client):
    good = Schedule.objects.create(name="good", actor_name="schedule_executions_prune",
                                   cron="30 3 * * *")
    # Written around the admin form (a shell, a bad migration): the scheduler must not crash.
    bad = Schedule.objects.create(name="bad", actor_name="schedule_executions_prune",
                                  cron="99 3 * * *", time_zone="Mars/Olympus")
    never = Schedule.objects.create(name="never", actor_name="schedule_executions_prune",
                                    cron="0 0 31 2 *")
    runner = SchedulerRunner(sync_seconds=1, lock_ttl_seconds=3)

    counts = runner.sync()
    again = runner.sync()

    assert (counts.added, counts.invalid) == (1, 2)
    assert (again.added, again.rescheduled, again.invalid) == (0, 0, 2)
    assert [job.id for job in runner.scheduler.get_jobs()] == [good.job_id]
    for row in (bad, never):
        row.refresh_from_db()
        assert row.last_outcome == ScheduleOutcome.ERROR
        assert row.last_error.startswith("invalid schedule:")
        assert row.last_run_at is None


@pytest.mark.django_db(transaction=True)
def test_a_tick_is_enqueued_at_most_once(broker, redis_client):
    # A new leader re-firing the tick the old one fired just before dying.
    schedule = Schedule.objects.create(name="prune", actor_name="schedule_executions_prune",
                                       cron="* * * * *")
    tick = "2026-11-29T03:00:00+00:00"

    first = fire_schedule(schedule.pk, scheduled_for=tick)
    again = fire_schedule(schedule.pk, scheduled_for=tick)
    next_tick = fire_schedule(schedule.pk, scheduled_for="2026-11-29T03:01:00+00:00")

    assert first is not None and again is None and next_tick is not None
    messages = [dramatiq.Message.decode(raw)
                for raw in broker.client.hvals(f"{broker.namespace}:maintenance.msgs")]
    assert sorted(m.options["scheduled_for"] for m in messages) == [
        tick, "2026-11-29T03:01:00+00:00"]
    assert redis_client.ttl(schedule_tick_key(schedule.pk, tick)) > 24 * 3600
