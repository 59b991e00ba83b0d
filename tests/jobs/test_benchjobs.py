"""``manage.py benchjobs --quick --json`` end to end: real worker subprocesses, tiny counts.

Checks the report's shape and that every job completed; it asserts no speed (speed is
what the command measures, not what a test may judge).
"""

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from marketplace.models import User
from notifications.models import EmailLog


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("mode", ["live", "backlog"])
def test_benchjobs_quick_json_runs_every_workload_to_completion(broker, mode):
    out = StringIO()

    call_command("benchjobs", "--quick", "--json", "--email-count", "24", "--noop-count",
                 "30", "--processes", "1", "--threads", "4", "--mode", mode, stdout=out)

    report = json.loads(out.getvalue())
    assert set(report) == {"machine", "config", "results", "jobsite_vs_bare"}
    assert {"cores", "cpu", "memory_gb", "python", "django", "dramatiq", "redis",
            "postgresql", "load_average"} <= set(report["machine"])
    assert report["config"]["counts"] == {"email": 24, "noop": 30, "bare": 30}
    assert (report["config"]["processes"], report["config"]["threads"]) == (1, 4)
    assert report["config"]["mode"] == mode
    assert [r["workload"] for r in report["results"]] == ["email", "noop", "bare"]
    for result in report["results"]:
        assert result["completed"] == result["succeeded"] == result["jobs"], result
        assert result["success_rate"] == 1.0
        assert result["wall_s"] > 0 and result["jobs_per_min"] > 0
        assert set(result["wait_ms"]) == set(result["run_ms"]) == {"p50", "p95", "p99"}
        assert all(value is not None for value in result["wait_ms"].values())
        assert result["peak_worker_rss_mb"] > 0
    assert report["results"][0]["outcomes"] == {"sent": 24}
    email = report["results"][0]
    assert (email["seed_target_per_min"], email["worker"]) == (1000, "high")
    assert email["ratio_to_target"] == pytest.approx(email["jobs_per_min"] / 1000, abs=0.01)
    assert report["results"][2]["worker"] == "bare"
    assert report["jobsite_vs_bare"] == pytest.approx(
        report["results"][1]["jobs_per_min"] / report["results"][2]["jobs_per_min"], abs=0.01)
    # The benchmark cleans up after itself: no bench users, emails or timings left
    assert not User.objects.filter(email__endswith="@bench.jobsite.invalid").exists()
    assert EmailLog.objects.count() == 0
    assert broker.client.keys("jobsite:bench:*") == []


@pytest.mark.django_db
def test_benchjobs_rejects_unknown_workloads():
    with pytest.raises(CommandError, match="Unknown workloads"):
        call_command("benchjobs", "--workloads", "email,fax", stdout=StringIO())
