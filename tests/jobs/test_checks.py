"""The jobs.E00x system checks hold the Dramatiq middleware order the platform relies on."""

import pytest
from django.core.management import call_command

from jobs.checks import middleware_order_errors

ORDER = [
    "jobs.middleware.execution.JobExecution",
    "jobs.middleware.stats.JobStatsMiddleware",
    "jobs.middleware.recovery.WorkerRecovery",
    "jobs.middleware.database.DatabaseOutageGate",
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.Retries",
    "jobs.middleware.database.DatabaseOutageRetries",
    "dramatiq.middleware.CurrentMessage",
    "jobs.middleware.debounce.DebounceRelease",
    "jobs.middleware.connections.DatabaseConnections",
    "jobs.middleware.schedule_lock.ScheduleRunLock",
]


def ids(middleware: list[str]) -> list[str]:
    return sorted(error.id for error in middleware_order_errors(middleware))


def moved(name: str, to: int) -> list[str]:
    [path] = [m for m in ORDER if m.rsplit(".", 1)[1] == name]
    order = [m for m in ORDER if m != path]
    order.insert(to, path)
    return order


def test_the_projects_own_order_passes(settings):
    assert settings.DRAMATIQ_BROKER["MIDDLEWARE"] == ORDER
    assert ids(ORDER) == []
    call_command("check", "--fail-level", "WARNING")  # raises SystemCheckError otherwise


@pytest.mark.parametrize(("order", "expected"), [
    (moved("JobExecution", 3), ["jobs.E001", "jobs.E002"]),
    (moved("JobStatsMiddleware", 7), ["jobs.E002"]),  # after Retries
    (moved("DatabaseOutageGate", 6), ["jobs.E005"]),  # after TimeLimit
    (moved("DatabaseOutageRetries", 5), ["jobs.E006"]),  # before Retries
    (moved("JobStatsMiddleware", 0), ["jobs.E001", "jobs.E002"]),  # before JobExecution
    (moved("ScheduleRunLock", 5), ["jobs.E003"]),
    (ORDER[:-1], ["jobs.E004"]),
    (ORDER + ["dramatiq.middleware.retries.Retries"], ["jobs.E003", "jobs.E004"]),
], ids=["execution-not-first", "stats-after-retries", "gate-after-time-limit",
        "outage-retries-before-retries", "stats-first", "lock-not-last", "lock-missing",
        "retries-twice"])
def test_a_wrong_order_is_an_error_naming_what_breaks(order, expected):
    assert ids(order) == expected


def test_a_wrong_setting_fails_manage_py_check(settings):
    from django.core.management.base import SystemCheckError

    settings.DRAMATIQ_BROKER = {**settings.DRAMATIQ_BROKER, "MIDDLEWARE": moved("Retries", 0)}
    with pytest.raises(SystemCheckError, match="jobs.E00"):
        call_command("check")
