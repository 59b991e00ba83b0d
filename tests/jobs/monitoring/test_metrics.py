"""Prometheus metrics: /metrics from the Redis stats and broker keys, and the exporter that
``rundramatiq`` worker processes serve on WORKER_METRICS_PORT."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dramatiq
import pytest
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import drain
from tests.jobs import actors

TOKEN = "test-metrics-token-0123456789"
ROOT = Path(settings.BASE_DIR)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    result = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            result[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return result


def job_labels(actor: str, queue: str = "analytics") -> tuple:
    return (("actor_name", actor), ("queue_name", queue))


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = TOKEN
    return TOKEN


@pytest.mark.django_db(transaction=True)
def test_metrics_expose_per_actor_counters_and_per_queue_gauges(
    clean_stats, broker, client, token
):
    # Given jobs a real worker of the analytics queue ran: two successes and one that
    # failed for good
    worker = dramatiq.Worker(broker, queues={"analytics"}, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        actors.succeeds.send(1)
        actors.succeeds.send(2)
        actors.always_fails.send()
        drain(broker, worker)
    finally:
        worker.stop()
    # and emails nobody consumes
    actors.email_noop.send(1)
    actors.email_noop.send(2)
    actors.email_noop.send(3)
    from jobs.monitoring import stats

    stats.recorder.flush()

    # When Prometheus scrapes /metrics with the token
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")

    # Then the per-actor counters and per-queue gauges are there with exact values
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    values = samples(response.content.decode())
    ok = job_labels("qmetrics_test_succeeds")
    failing = job_labels("qmetrics_test_always_fails")
    assert values[("jobsite_jobs_succeeded_total", ok)] == 2
    assert values[("jobsite_jobs_enqueued_total", ok)] == 2
    assert values[("jobsite_jobs_failed_total", failing)] == 1
    assert values[("jobsite_jobs_retried_total", failing)] == 1
    assert values[("jobsite_jobs_dead_lettered_total", failing)] == 1
    assert values[("jobsite_job_duration_seconds_count", ok)] == 2
    inf_bucket = tuple(sorted(ok + (("le", "+Inf"),)))
    assert values[("jobsite_job_duration_seconds_bucket", inf_bucket)] == 2
    assert values[("jobsite_job_wait_seconds_count", failing)] == 2
    assert values[("jobsite_jobs_enqueued_total", job_labels("qmetrics_test_email_noop",
                                                            "emails"))] == 3
    assert values[("jobsite_queue_ready_messages", (("queue_name", "emails"),))] == 3
    assert values[("jobsite_queue_ready_messages", (("queue_name", "analytics"),))] == 0
    assert values[("jobsite_queue_dead_messages", (("queue_name", "analytics"),))] == 1
    assert values[("jobsite_queue_delayed_messages", (("queue_name", "analytics"),))] == 0
    assert values[("jobsite_queue_oldest_message_age_seconds", (("queue_name", "emails"),))] < 60
    assert ("jobsite_workers_live", ()) in values


@pytest.mark.django_db
def test_metrics_refuse_anonymous_with_401(client, token, redis_client):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_metrics_refuse_a_wrong_token_and_non_staff(client, token, django_user_model,
                                                    redis_client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 403
    user = django_user_model.objects.create_user("client@example.test", "pw-client-123")
    client.force_login(user)
    assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
def test_metrics_refuse_every_token_when_none_is_configured(client, settings, redis_client):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


@pytest.mark.django_db
def test_metrics_allow_staff_sessions(staff_client, redis_client):
    response = staff_client.get("/metrics")
    assert response.status_code == 200
    assert b"jobsite_queue_ready_messages" in response.content


def _scrape(url: str, *, until, attempts: int = 100) -> str:
    """Scrape until ``until(text)`` holds; the exporter and workers boot asynchronously."""
    text = ""
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text = response.read().decode()
            if until(text):
                return text
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"condition never held; last scrape:\n{text[:2000]}")


@pytest.mark.django_db(transaction=True)
def test_worker_group_processes_export_their_metrics(clean_stats, broker, tmp_path):
    # Given the batch worker group (rundramatiq) with two processes; its exporter listens on
    # WORKER_METRICS_PORT + 3, the batch group's position
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "WORKER_METRICS_PORT": "16460",
        "WORKER_METRICS_DIR": str(tmp_path),
        "JOB_STATS_FLUSH_SECONDS": "0.2",
    }
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runworkergroup", "batch", "--processes", "2",
         "--threads", "2"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        url = "http://127.0.0.1:16463/metrics"
        _scrape(url, until=lambda text: "jobsite_queue_ready_messages" in text)

        # When the workers run six jobs (a project actor: the subprocess loads tasks modules)
        from jobs.monitoring import stats
        from jobs.tasks import job_stats_rollup

        for _ in range(6):
            job_stats_rollup.send()
        stats.recorder.flush()  # this process counted the enqueues
        broker.join("maintenance", timeout=30_000)

        # Then the exporter sums both processes' counters, and the Redis stats agree
        labels = job_labels("job_stats_rollup", "maintenance")
        key = ("jobsite_worker_jobs_succeeded_total", labels)
        text = _scrape(url, until=lambda text: samples(text).get(key) == 6)
        assert samples(text)[("jobsite_worker_job_duration_seconds_count", labels)] == 6
        for _ in range(50):
            if stats.totals().get(("maintenance", "job_stats_rollup"),
                                  stats.StatCounts()).succeeded == 6:
                break
            time.sleep(0.1)
        counts = stats.totals()[("maintenance", "job_stats_rollup")]
        assert (counts.enqueued, counts.succeeded) == (6, 6)
    finally:
        process.send_signal(signal.SIGTERM)  # dramatiq's main process stops its children
        try:
            _, stderr = process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            raise
    assert process.returncode == 0, stderr.decode()[-3000:]


@pytest.mark.django_db
def test_metrics_answer_503_when_redis_is_down(staff_client, settings, redis_client):
    from jobs.redis import get_redis

    settings.REDIS_OPTIONS = {"host": "127.0.0.1", "port": 16452, "db": 0}  # closed port
    get_redis.cache_clear()
    try:
        response = staff_client.get("/metrics")
    finally:
        get_redis.cache_clear()  # the settings fixture restores REDIS_OPTIONS
    assert response.status_code == 503
    assert response.content == b"Redis unavailable (ConnectionError).\n"
