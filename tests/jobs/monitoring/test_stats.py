"""Job statistics: recorded by the middleware for jobs real workers run, rolled up into
PostgreSQL, summarised by ``performance_summary``."""

import json
import time
import uuid
from datetime import UTC, datetime, timedelta

import dramatiq
import pytest

from jobs.models import JobStatHour
from jobs.monitoring import stats
from tests.conftest import drain
from tests.jobs import actors

Q = "analytics"


def counts_for(actor_name: str) -> stats.StatCounts:
    return stats.totals().get((Q, actor_name), stats.StatCounts())


@pytest.mark.django_db(transaction=True)
def test_worker_records_succeeded_retried_failed_and_dead_lettered_jobs(
    clean_stats, broker, worker
):
    # Given jobs that succeed, fail once then succeed, always fail, and fail permanently
    key = uuid.uuid4().hex
    actors.succeeds.send(1)
    actors.succeeds.send(2)
    actors.flaky.send(key)
    actors.always_fails.send()
    actors.permanent.send()

    # When a real worker has run them all and the recorder has flushed
    drain(broker, worker)
    stats.recorder.flush()

    # Then each actor's counts say exactly what happened
    ok = counts_for("qmetrics_test_succeeds")
    assert (ok.enqueued, ok.succeeded, ok.failed, ok.retried, ok.dead_lettered) == (2, 2, 0, 0, 0)
    flaky = counts_for("qmetrics_test_flaky")
    assert actors.attempts(key) == 2
    # A retry is not a second enqueue, and the delayed retry moving to its queue is not either.
    assert (flaky.enqueued, flaky.succeeded, flaky.failed, flaky.retried) == (1, 1, 0, 1)
    assert flaky.dead_lettered == 0
    failing = counts_for("qmetrics_test_always_fails")
    assert (failing.enqueued, failing.succeeded, failing.failed, failing.retried,
            failing.dead_lettered) == (1, 0, 1, 1, 1)
    permanent = counts_for("qmetrics_test_permanent")
    assert (permanent.enqueued, permanent.failed, permanent.retried,
            permanent.dead_lettered) == (1, 1, 0, 1)
    # Every run has a run time and a wait time; retried attempts included.
    assert (ok.runs, flaky.runs, failing.runs, permanent.runs) == (2, 2, 2, 1)
    assert sum(flaky.wait_buckets) == 2
    # The per-minute buckets (the run spans at most the last two minutes) hold the same.
    recent = stats.StatCounts()
    for _minute, per_key in stats.recent_minutes(count=2):
        recent.add(per_key.get((Q, "qmetrics_test_flaky"), stats.StatCounts()))
    assert (recent.enqueued, recent.succeeded, recent.retried, recent.runs) == (1, 1, 1, 2)


def test_stats_keys_hold_only_queue_and_actor_names(clean_stats, redis_client):
    # Given a job recorded for an actor
    stats.recorder.record("emails", "email_send", stats.Event.SUCCEEDED, run_ms=12, wait_ms=3)
    stats.recorder.flush()

    # Then the stored fields are made of the queue, the actor and the measure only
    fields = {f.decode() for f in redis_client.hkeys(stats.totals_key())}
    assert fields == {"emails|email_send|succeeded", "emails|email_send|run_b2",
                      "emails|email_send|run_sum", "emails|email_send|wait_b0",
                      "emails|email_send|wait_sum"}


def test_histogram_percentile_interpolates_inside_buckets():
    buckets = [0] * stats.BUCKET_COUNT
    buckets[1] = 50  # (5, 10] ms
    buckets[2] = 45  # (10, 25] ms
    buckets[5] = 5  # (100, 250] ms
    assert stats.histogram_percentile(buckets, 0.5) == 10.0
    assert stats.histogram_percentile(buckets, 0.95) == 25.0
    assert stats.histogram_percentile(buckets, 0.99) == pytest.approx(100 + 150 * 4 / 5)
    assert stats.histogram_percentile([0] * stats.BUCKET_COUNT, 0.5) is None
    overflow = [0] * stats.BUCKET_COUNT
    overflow[-1] = 3
    assert stats.histogram_percentile(overflow, 0.5) == float(stats.BUCKETS_MS[-1])


def _record(n, queue, actor, event, *, run_ms, wait_ms, at):
    for _ in range(n):
        stats.recorder.record(queue, actor, event, run_ms=run_ms, wait_ms=wait_ms,
                              now=at.timestamp())


def _hour_ago(hours: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours)


@pytest.mark.django_db
def test_performance_summary_combines_rollups_and_recent_minutes(clean_stats):
    # Given an hour of emails: fast successes and a few slow failures, rolled up ...
    hour = _hour_ago(3)
    _record(50, "emails", "email_send", "succeeded", run_ms=7, wait_ms=40, at=hour)
    _record(5, "emails", "email_send", "failed", run_ms=200, wait_ms=40,
            at=hour + timedelta(minutes=5))
    stats.recorder.flush()
    assert stats.job_stats_rollup(now=(hour + timedelta(minutes=20)).timestamp()) == 1
    # ... and more minutes of the same hour and queue only in Redis yet
    _record(45, "emails", "email_send", "succeeded", run_ms=20, wait_ms=700,
            at=hour + timedelta(minutes=30))
    _record(10, "emails", "email_digest", "succeeded", run_ms=3000, wait_ms=700,
            at=hour + timedelta(minutes=31))
    _record(2, "emails", "email_digest", "retried", run_ms=3000, wait_ms=700,
            at=hour + timedelta(minutes=31))
    _record(4, "push", "push_send", "succeeded", run_ms=30, wait_ms=2, at=hour)
    # and something outside the period
    _record(7, "emails", "email_send", "failed", run_ms=7, wait_ms=1,
            at=hour + timedelta(hours=1, minutes=1))
    stats.recorder.flush()

    # When the hour is summarised
    summary = stats.performance_summary(start=hour, end=hour + timedelta(hours=1))

    # Then the counts are exact and nothing is counted twice
    emails = summary["emails"]
    assert (emails.jobs_run, emails.succeeded, emails.failed, emails.retried) == (110, 105, 5, 2)
    assert emails.failure_rate == pytest.approx(5 / 110)
    assert emails.runs == 112
    # Run times: 50 in (5,10], 45 in (10,25], 5 in (100,250], 12 in (2500,5000]
    assert emails.p50_run_ms == pytest.approx(10 + 15 * (56 - 50) / 45)
    assert emails.p95_run_ms == pytest.approx(2500 + 2500 * (0.95 * 112 - 100) / 12)
    # Wait times: 55 in (25,50], 57 in (500,1000]
    assert emails.p50_wait_ms == pytest.approx(500 + 500 * (56 - 55) / 57)
    assert emails.p95_wait_ms == pytest.approx(500 + 500 * (0.95 * 112 - 55) / 57)
    assert [a.actor_name for a in emails.slowest_actors] == ["email_digest", "email_send"]
    assert emails.slowest_actors[0].jobs_run == 10
    assert emails.slowest_actors[0].mean_run_ms == 3000
    assert summary["push"].jobs_run == 4
    assert summary["push"].failure_rate == 0.0
    assert set(summary) == {"emails", "push"}

    # And rolling up the rest gives the same summary from PostgreSQL alone
    stats.job_stats_rollup(now=(hour + timedelta(hours=2)).timestamp())
    assert stats.performance_summary(start=hour, end=hour + timedelta(hours=1)) == summary


@pytest.mark.django_db
def test_rollup_is_idempotent_and_leaves_unsettled_minutes(clean_stats):
    # Given two settled minutes and one still open, in one hour
    hour = _hour_ago(2)
    _record(3, "emails", "email_send", "succeeded", run_ms=7, wait_ms=1, at=hour)
    _record(2, "emails", "email_send", "failed", run_ms=7, wait_ms=1,
            at=hour + timedelta(minutes=1))
    _record(4, "emails", "email_send", "succeeded", run_ms=7, wait_ms=1,
            at=hour + timedelta(minutes=10))
    stats.recorder.flush()
    now = (hour + timedelta(minutes=11)).timestamp()

    # When the rollup runs twice
    assert stats.job_stats_rollup(now=now) == 1
    assert stats.job_stats_rollup(now=now) == 0

    # Then the row holds the settled minutes exactly once
    row = JobStatHour.objects.get()
    assert (row.hour, row.queue_name, row.actor_name) == (hour, "emails", "email_send")
    assert (row.succeeded, row.failed) == (3, 2)
    base = int(hour.timestamp() // 60)
    assert row.minutes == [base, base + 1]
    assert row.run_buckets[1] == 5

    # And a later run adds only the minute that has settled since
    assert stats.job_stats_rollup(now=now + 600) == 1
    assert stats.job_stats_rollup(now=now + 600) == 0
    row.refresh_from_db()
    assert (row.succeeded, row.failed, sum(row.run_buckets)) == (7, 2, 9)
    assert row.minutes == [base, base + 1, base + 10]


@pytest.mark.django_db(transaction=True)
def test_rollup_actor_runs_on_a_worker(clean_stats, broker, worker):
    # Given a settled minute of stats
    at = datetime.now(UTC) - timedelta(minutes=5)
    _record(2, "push", "push_send", "succeeded", run_ms=40, wait_ms=1, at=at)
    stats.recorder.flush()

    # When the scheduled actor runs
    from jobs.tasks import SCHEDULES, job_stats_rollup

    job_stats_rollup.send()
    drain(broker, worker)

    # Then the minute is in PostgreSQL, and the default schedule runs it every 10 minutes
    row = JobStatHour.objects.get(actor_name="push_send")
    assert row.succeeded == 2
    spec = next(s for s in SCHEDULES if s.actor_name == "job_stats_rollup")
    assert (spec.cron, spec.time_zone) == ("*/10 * * * *", "UTC")


def test_counts_survive_a_failed_flush(clean_stats, redis_client):
    # Given counts buffered while Redis cannot be reached
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    stats.recorder.record("push", "push_send", stats.Event.SUCCEEDED, run_ms=3, wait_ms=1)
    unreachable = redis.Redis(port=16452, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    stats.recorder.is_worker = True  # a worker's flush always talks to Redis
    try:
        with pytest.raises(redis.ConnectionError):
            stats.recorder.flush(client=unreachable)
    finally:
        stats.recorder.is_worker = False

    # When Redis is back, then the next flush writes them, once
    stats.recorder.flush()
    stats.recorder.flush()
    counts = stats.totals()[("push", "push_send")]
    assert (counts.succeeded, counts.runs) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_running_jobs_are_counted_in_progress_until_they_finish(clean_stats, broker, worker,
                                                                 staff_client):
    # Given a job that is running on a real worker
    actors.started.clear()
    actors.release.clear()
    actors.blocks.send()
    assert actors.started.wait(timeout=20)

    # When the worker's stats are flushed, then it is in progress, in the stats and /metrics
    stats.recorder.flush()
    try:
        assert stats.in_progress() == {(Q, "qmetrics_test_blocks"): 1}
        text = staff_client.get("/metrics").content.decode()
        assert ('jobsite_jobs_in_progress{actor_name="qmetrics_test_blocks",'
                'queue_name="analytics"} 1.0') in text.splitlines()
    finally:
        actors.release.set()

    # And once it finishes, it is not
    drain(broker, worker)
    stats.recorder.flush()
    assert stats.in_progress() == {}
    assert counts_for("qmetrics_test_blocks").succeeded == 1


def test_worker_registry_keeps_a_just_booted_worker_and_prunes_a_silent_one(redis_client):
    from jobs.monitoring.broker_state import live_workers, worker_register, workers_key

    # given two registered workers with no broker heartbeat yet: one booted just now,
    # one registered two minutes ago (past the heartbeat timeout) and silent since
    worker_register(broker_id="fresh", queues=["emails"])
    worker_register(broker_id="silent", queues=["push"])
    silent = json.loads(redis_client.hget(workers_key(), "silent"))
    silent["started"] -= 120
    redis_client.hset(workers_key(), "silent", json.dumps(silent))

    # when the registry is read, neither counts as live (no heartbeat)...
    assert live_workers(redis_client) == []
    # ...the fresh one stays registered for its first heartbeat, the silent one is pruned
    assert set(redis_client.hkeys(workers_key())) == {b"fresh"}

    # and once the fresh worker's consumer fetches (heartbeat), it is live
    broker = dramatiq.get_broker()
    redis_client.zadd(f"{broker.namespace}:__heartbeats__", {"fresh": time.time() * 1000})
    assert [w["queues"] for w in live_workers(redis_client)] == [["emails"]]


@pytest.mark.django_db
def test_counts_include_the_minute_the_end_falls_in_even_at_its_first_second(redis_client):
    # given a job recorded in some minute, and an end 0.3 s into that same minute
    minute_start = datetime(2026, 11, 29, 10, 41, tzinfo=UTC)
    stats.recorder.record("emails", "email_send", "succeeded", run_ms=8, wait_ms=40,
                          now=minute_start.timestamp() + 0.1)
    stats.recorder.flush()

    # when the summary ends 0.3 s into that minute, the job counts
    end = minute_start + timedelta(seconds=0.3)
    summary = stats.performance_summary(start=end - timedelta(days=1), end=end)
    assert summary["emails"].jobs_run == 1
    # and a summary ending exactly at the minute's start excludes it (end is exclusive)
    assert "emails" not in stats.performance_summary(start=end - timedelta(days=1),
                                                     end=minute_start)
