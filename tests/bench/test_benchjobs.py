"""``manage.py benchjobs --quick --json`` end to end: run as ``make bench`` runs it (its
own process on ``config.settings_bench``, here on the test database and Redis), real
worker subprocesses, tiny counts.

Checks the report's shape and that every job completed; it asserts no speed (speed is
what the command measures, not what a test may judge).
"""

import ast
import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from marketplace.models import User
from notifications.models import Device, EmailLog, Notification, PushCampaign, PushLog
from payments.models import Payment, StripeEvent
from tests.bench.commands import bench_command


def benchjobs(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    return bench_command("benchjobs", *args, **extra_env)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["live", "backlog"])
def test_benchjobs_quick_json_runs_every_workload_to_completion(broker, mode):
    # Batches of 10: the 30-user broadcast needs exactly 3 OneSignal requests.
    done = benchjobs("--quick", "--json", "--workloads", "email,push,broadcast,noop,bare",
                     "--email-count", "24", "--push-count", "20",
                     "--broadcast-count", "30", "--noop-count", "30",
                     "--processes", "1", "--threads", "4", "--mode", mode,
                     PUSH_BATCH_SIZE="10")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report) == {"machine", "config", "results", "jobsite_vs_bare"}
    assert {"cores", "cpu", "memory_gb", "python", "django", "dramatiq", "redis",
            "postgresql", "load_average"} <= set(report["machine"])
    assert report["config"]["counts"] == {"email": 24, "push": 20, "broadcast": 30,
                                          "noop": 30, "bare": 30}
    assert (report["config"]["processes"], report["config"]["threads"]) == (1, 4)
    assert report["config"]["mode"] == mode
    results = {r["workload"]: r for r in report["results"]}
    assert list(results) == ["email", "push", "broadcast", "noop", "bare"]
    for result in report["results"]:
        assert result["completed"] == result["succeeded"] == result["jobs"], result
        assert result["success_rate"] == 1.0
        assert result["wall_s"] > 0 and result["jobs_per_min"] > 0
        assert set(result["wait_ms"]) == set(result["run_ms"]) == {"p50", "p95", "p99"}
        assert all(value is not None for value in result["wait_ms"].values())
        assert result["peak_worker_rss_mb"] > 0
    assert results["email"]["outcomes"] == {"sent": 24}
    email = results["email"]
    assert (email["seed_target_per_min"], email["worker"]) == (1000, "high")
    assert email["ratio_to_target"] == pytest.approx(email["jobs_per_min"] / 1000, abs=0.01)
    # Pushes reached the OneSignal stand-in, one request each, none malformed.
    assert results["push"]["worker"] == results["broadcast"]["worker"] == "push"
    assert results["push"]["outcomes"] == {
        "sent": 20, "(onesignal requests)": 20, "(onesignal recipients)": 20,
        "(onesignal rejected)": 0}
    assert results["broadcast"]["outcomes"] == {
        "sent": 30, "(onesignal batches)": 3, "(batch attempts)": 3,
        "(onesignal requests)": 3, "(onesignal recipients)": 30, "(onesignal rejected)": 0}
    assert results["bare"]["worker"] == "bare"
    assert report["jobsite_vs_bare"] == pytest.approx(
        results["noop"]["jobs_per_min"] / results["bare"]["jobs_per_min"], abs=0.01)
    # The benchmark cleans up after itself: no bench users, emails, pushes or timings left
    assert not User.objects.filter(email__endswith="@bench.jobsite.invalid").exists()
    assert EmailLog.objects.count() == 0
    assert (PushLog.objects.count(), Device.objects.count(), PushCampaign.objects.count(),
            Notification.objects.count()) == (0, 0, 0, 0)
    assert broker.client.keys(f"{settings.DRAMATIQ_NAMESPACE}:bench:*") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["live", "backlog"])
def test_benchjobs_payments_posts_signed_webhooks_to_gunicorn_until_all_are_processed(
        broker, mode):
    done = benchjobs("--json", "--workloads", "payments,noop,bare", "--payments-count", "12",
                     "--noop-count", "20", "--processes", "1", "--threads", "4",
                     "--mode", mode, "--timeout", "60")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    results = {r["workload"]: r for r in report["results"]}
    assert list(results) == ["payments", "noop", "bare"]
    payments = results["payments"]
    assert payments["completed"] == payments["succeeded"] == payments["jobs"] == 12
    assert (payments["worker"], payments["seed_target_per_min"]) == ("high", 100)
    # Every event processed, its payment succeeded, its email and push sent.
    assert payments["outcomes"] == {
        "event processed": 12, "payment succeeded": 12, "email sent": 12, "push sent": 12,
        "(onesignal requests)": 12, "(onesignal recipients)": 12, "(onesignal rejected)": 0}
    webhook = payments["webhook"]
    assert (webhook["requests"], webhook["statuses"]) == (12, {"200": 12})
    assert webhook["per_min"] > 0 and webhook["latency_ms"]["p50"] > 0
    assert all(value is not None for value in payments["wait_ms"].values())
    # CPU by process kind; the web server and both worker groups did work.
    assert {"workers", "workers high", "workers push", "web", "bench", "postgres",
            "redis"} == set(payments["cpu_ms_per_job"])
    assert all(payments["cpu_s"][kind] > 0 for kind in ("workers high", "workers push",
                                                        "web"))
    assert set(results["bare"]["cpu_ms_per_job"]) == {"workers", "workers bare", "bench",
                                                      "postgres", "redis"}
    assert report["jobsite_vs_bare"] > 0
    # Payment records are never deleted: the run's stay (the warm-up's too, in live
    # mode), succeeded; its events, emails, pushes and devices are gone.
    kept = 24 if mode == "live" else 12
    assert Payment.objects.filter(status="succeeded").count() == Payment.objects.count() == kept
    assert (StripeEvent.objects.count(), EmailLog.objects.count(), PushLog.objects.count(),
            Device.objects.count(), Notification.objects.count()) == (0, 0, 0, 0, 0)
    assert broker.client.keys(f"{settings.DRAMATIQ_NAMESPACE}:bench:*") == []


@pytest.mark.django_db
def test_benchjobs_rejects_unknown_workloads():
    done = benchjobs("--workloads", "email,fax")

    assert done.returncode == 1
    assert "Unknown workloads ['fax']" in done.stderr


def test_production_settings_register_no_benchmark_actor_or_command():
    # A process on the project's settings, as production runs them.
    code = ("import django; django.setup(); "
            "from django.core.management import get_commands; "
            "from jobs.scheduling.selectors import registered_actor_names; "
            "print(sorted(registered_actor_names())); "
            "print({'benchjobs', 'benchretention'} & set(get_commands()))")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "DEBUG": "true",
           "REDIS_URL": "redis://127.0.0.1:6379/15"}
    out = subprocess.run([sys.executable, "-c", code], cwd=settings.BASE_DIR, env=env,
                         capture_output=True, text=True, check=True).stdout.splitlines()
    actors = ast.literal_eval(out[0])
    assert "send_email_task" in actors and "performance_report" in actors
    assert "bench_noop" not in actors
    assert out[1] == "set()"
