"""Health: /health/live, /health/ready and ``manage.py jobs_health`` against real services,
a Redis of our own that we stop, a closed port, and a socket that never answers."""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from io import StringIO
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection

from jobs.redis import scheduler_heartbeat_key, scheduler_leader_key
from tests.conftest import drain
from tests.jobs import actors

ROOT = Path(settings.BASE_DIR)
OWN_REDIS_PORT = 16451
CLOSED_PORT = 16452
SILENT_PORT = 16453
PASSWORD = "s3cret-health-pw"


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, with a password; the test may stop it."""
    server = shutil.which("redis-server")
    process = subprocess.Popen(
        [server, "--port", str(OWN_REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--requirepass", PASSWORD, "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(port=OWN_REDIS_PORT, password=PASSWORD, socket_timeout=1)
    for _ in range(100):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield process
    process.terminate()
    process.wait(timeout=10)


def point_at(settings, port: int, **extra) -> None:
    settings.REDIS_OPTIONS = {"host": "127.0.0.1", "port": port, "db": 0, **extra}


def ready(client) -> tuple[int, dict]:
    response = client.get("/health/ready")
    return response.status_code, json.loads(response.content)


def test_live_answers_without_any_dependency(client, settings):
    point_at(settings, CLOSED_PORT)
    response = client.get("/health/live")
    assert response.status_code == 200
    assert json.loads(response.content) == {"status": "alive"}


@pytest.mark.django_db(transaction=True)
def test_ready_when_everything_is_up(client, broker, worker, redis_client):
    # Given a live worker (it has run a job) and a running scheduler
    actors.succeeds.send(1)
    drain(broker, worker)
    redis_client.set(scheduler_heartbeat_key(), str(time.time()), ex=60)

    # When readiness is asked
    status, report = ready(client)

    # Then every check passes
    assert status == 200, report
    assert report["status"] == "ready"
    assert report["failing"] == []
    checks = report["checks"]
    assert {name: c["ok"] for name, c in checks.items()} == {
        "database": True, "redis": True, "redis_data": True, "queues": True, "workers": True,
        "scheduler": True,
        "clamd": True}
    assert checks["workers"]["live"] >= 1
    assert checks["scheduler"]["status"] == "running"
    assert checks["queues"]["queues"]["analytics"]["ready"] == 0


@pytest.mark.django_db
def test_stopped_redis_is_not_ready_and_no_secret_is_shown(client, settings, own_redis):
    # Given Redis (with a password) is up, readiness reports it fine
    point_at(settings, OWN_REDIS_PORT, password=PASSWORD)
    settings.HEALTH_MIN_WORKERS = 0
    status, report = ready(client)
    assert status == 200, report
    assert report["checks"]["redis"] == {"ok": True}

    # When that Redis stops
    own_redis.terminate()
    own_redis.wait(timeout=10)
    response = client.get("/health/ready")

    # Then readiness fails on Redis and what reads it, without leaking the password
    report = json.loads(response.content)
    assert response.status_code == 503
    assert report["status"] == "not ready"
    assert report["failing"] == ["queues", "redis", "redis_data", "workers"]
    assert report["checks"]["redis"] == {"ok": False, "error": "ConnectionError"}
    assert report["checks"]["database"] == {"ok": True}
    # the scheduler is optional by default: unknown, but not failing
    assert report["checks"]["scheduler"]["ok"] is True
    assert report["checks"]["scheduler"]["status"] == "unknown"
    assert PASSWORD not in response.content.decode()


@pytest.mark.django_db
def test_closed_redis_port_is_not_ready(client, settings):
    point_at(settings, CLOSED_PORT)
    status, report = ready(client)
    assert status == 503
    assert "redis" in report["failing"]


@pytest.mark.django_db
def test_redis_that_never_answers_times_out_instead_of_hanging(client, settings):
    # Given a socket that accepts connections and never replies
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", SILENT_PORT))
        silent.listen(16)
        point_at(settings, SILENT_PORT)
        settings.HEALTH_CHECK_TIMEOUT_SECONDS = 0.3

        # When readiness is asked, then it answers, with Redis failed
        status, report = ready(client)
    assert status == 503
    assert report["checks"]["redis"]["ok"] is False
    assert report["checks"]["redis"]["error"] in {"TimeoutError", "timeout"}


@pytest.mark.django_db
def test_backlog_and_old_messages_make_a_queue_not_ready(client, settings, broker):
    # Given three emails waiting, one of them for an hour, and no worker
    settings.HEALTH_MIN_WORKERS = 0
    settings.HEALTH_QUEUE_BACKLOG_LIMITS = {"emails": 2}
    old = actors.email_noop.message(0).copy(message_timestamp=int((time.time() - 3600) * 1000))
    broker.enqueue(old)
    actors.email_noop.send(1)
    actors.email_noop.send(2)

    # When readiness is asked
    status, report = ready(client)

    # Then the emails queue fails on both thresholds; the others are fine
    assert status == 503
    assert report["failing"] == ["queues"]
    emails = report["checks"]["queues"]["queues"]["emails"]
    assert (emails["ok"], emails["ready"], emails["max_backlog"]) == (False, 3, 2)
    assert 3590 <= emails["oldest_age_seconds"] <= 3700
    assert emails["problems"][0] == "backlog 3 > 2"
    assert emails["problems"][1].startswith("oldest message 36")
    assert report["checks"]["queues"]["queues"]["push"]["ok"] is True


@pytest.mark.django_db
def test_scheduler_heartbeat_is_reported_and_required_only_when_configured(
    client, settings, redis_client
):
    settings.HEALTH_MIN_WORKERS = 0
    status, report = ready(client)
    assert status == 200
    assert report["checks"]["scheduler"] == {
        "ok": True, "status": "not running", "heartbeat_age_seconds": None, "leader": False,
        "required": False}

    settings.HEALTH_REQUIRE_SCHEDULER = True
    status, report = ready(client)
    assert status == 503
    assert report["failing"] == ["scheduler"]

    redis_client.set(scheduler_heartbeat_key(), str(time.time() - 5), ex=60)
    redis_client.set(scheduler_leader_key(), "scheduler-1", ex=60)
    status, report = ready(client)
    assert status == 200
    assert report["checks"]["scheduler"]["status"] == "running"
    assert report["checks"]["scheduler"]["leader"] is True

    redis_client.set(scheduler_heartbeat_key(), str(time.time() - 120), ex=60)
    assert ready(client)[0] == 503


@pytest.mark.django_db
@pytest.mark.parametrize("address", [f"tcp://127.0.0.1:{CLOSED_PORT}",
                                     "unix:///nonexistent/clamd.sock"])
def test_unreachable_clamd_is_not_ready(client, settings, redis_client, address):
    settings.HEALTH_MIN_WORKERS = 0
    settings.CLAMD_ADDRESS = address
    status, report = ready(client)
    assert status == 503
    assert report["failing"] == ["clamd"]


@pytest.mark.django_db
def test_disabled_clamd_does_not_fail_readiness(client, settings, redis_client):
    settings.HEALTH_MIN_WORKERS = 0
    settings.CLAMD_ADDRESS = ""
    status, report = ready(client)
    assert status == 200
    assert report["checks"]["clamd"] == {"ok": True, "status": "disabled"}


@pytest.mark.django_db
def test_no_live_worker_is_not_ready_by_default(client, redis_client):
    status, report = ready(client)
    assert status == 503
    assert report["failing"] == ["workers"]
    assert report["checks"]["workers"] == {"ok": False, "live": 0, "minimum": 1}


# --- manage.py jobs_health ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_jobs_health_prints_the_report_and_succeeds_when_ready(broker, worker):
    actors.succeeds.send(1)
    drain(broker, worker)
    out = StringIO()
    call_command("jobs_health", stdout=out)
    text = out.getvalue()
    assert text.startswith("status: ready\n")
    assert "[ok ] workers: live=" in text
    assert "[ok ] emails: ready=0" in text


@pytest.mark.django_db
def test_jobs_health_fails_with_exit_code_1_when_not_ready(settings, redis_client):
    settings.HEALTH_MIN_WORKERS = 0
    settings.CLAMD_ADDRESS = f"tcp://127.0.0.1:{CLOSED_PORT}"
    out = StringIO()
    with pytest.raises(CommandError, match="Not ready: clamd") as raised:
        call_command("jobs_health", "--json", stdout=out)
    assert raised.value.returncode == 1
    assert json.loads(out.getvalue())["failing"] == ["clamd"]


def run_jobs_health(**env) -> subprocess.CompletedProcess:
    # The child process checks the test database (the developer's own may not exist).
    db = connection.settings_dict
    env.setdefault(
        "DATABASE_URL",
        f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
    )
    return subprocess.run(
        [sys.executable, "manage.py", "jobs_health"], cwd=ROOT, capture_output=True,
        text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", **env},
    )


@pytest.mark.django_db
def test_jobs_health_process_exit_codes(redis_client):
    # Ready (no worker required): exit 0
    result = run_jobs_health(HEALTH_MIN_WORKERS="0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("status: ready")
    # Redis down: exit 1, and the cause on stderr
    result = run_jobs_health(HEALTH_MIN_WORKERS="0",
                             TEST_REDIS_URL=f"redis://127.0.0.1:{CLOSED_PORT}/0")
    assert result.returncode == 1
    assert "[FAIL] redis: error=ConnectionError" in result.stdout
    assert "Not ready: queues, redis, redis_data, workers" in result.stderr
