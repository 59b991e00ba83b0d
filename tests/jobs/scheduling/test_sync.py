"""schedules_sync installs the defaults apps declare, never over staff edits."""

import pytest
from django.core.management import call_command

from jobs.models import Schedule
from jobs.scheduling.selectors import default_schedule_specs, registered_actor_names
from jobs.scheduling.services import schedules_sync
from jobs.scheduling.specs import ScheduleSpec

SPEC = ScheduleSpec(name="log-cleanup", actor_name="log_cleanup", cron="0 2 * * *",
                    time_zone="America/Toronto", description="daily")


@pytest.mark.django_db
def test_command_installs_every_declared_default_whose_actor_exists(capsys):
    call_command("schedules_sync")

    rows = {s.name: s for s in Schedule.objects.all()}
    registered = set(registered_actor_names())
    assert set(rows) == {spec.name for spec in default_schedule_specs()
                         if spec.actor_name in registered}
    assert (rows["security-audit"].cron, rows["security-audit"].time_zone) == (
        "0 6 * * 0", "America/Toronto")
    assert all(row.is_default and not row.is_customized for row in rows.values())
    assert f"{len(rows)} created" in capsys.readouterr().out
    assert {"log-cleanup", "performance-report", "security-audit", "certificate-expiry-check",
            "job_stats_rollup", "notifications-daily-digest"} <= set(rows)


@pytest.mark.django_db
def test_dry_run_writes_nothing(capsys):
    call_command("schedules_sync", "--dry-run")

    assert not Schedule.objects.exists()
    out = capsys.readouterr().out
    assert "created: " in out and "Dry run: nothing was written." in out


@pytest.mark.django_db
def test_second_sync_changes_nothing():
    schedules_sync(specs=[SPEC])

    result = schedules_sync(specs=[SPEC])

    assert (result.created, result.updated, result.unchanged) == ([], [], ["log-cleanup"])


@pytest.mark.django_db
def test_changed_default_updates_a_row_staff_never_edited():
    schedules_sync(specs=[SPEC])
    changed = ScheduleSpec(name="log-cleanup", actor_name="log_cleanup", cron="15 2 * * *",
                           time_zone="America/Toronto", description="daily")

    result = schedules_sync(specs=[changed])

    assert result.updated == ["log-cleanup"]
    assert Schedule.objects.get(name="log-cleanup").cron == "15 2 * * *"


@pytest.mark.django_db
def test_staff_edits_are_never_overwritten():
    schedules_sync(specs=[SPEC])
    Schedule.objects.filter(name="log-cleanup").update(cron="0 4 * * *", enabled=False,
                                                       is_customized=True)
    changed = ScheduleSpec(name="log-cleanup", actor_name="log_cleanup", cron="15 2 * * *",
                           time_zone="America/Toronto")

    result = schedules_sync(specs=[changed])

    assert result.kept_staff_edits == ["log-cleanup"]
    row = Schedule.objects.get(name="log-cleanup")
    assert (row.cron, row.enabled) == ("0 4 * * *", False)


@pytest.mark.django_db
def test_a_row_staff_created_with_the_same_name_is_kept():
    Schedule.objects.create(name="log-cleanup", actor_name="log_cleanup", cron="5 5 * * *")

    result = schedules_sync(specs=[SPEC])

    assert result.kept_staff_edits == ["log-cleanup"]
    assert Schedule.objects.get(name="log-cleanup").cron == "5 5 * * *"


@pytest.mark.django_db
def test_default_without_a_registered_actor_is_not_installed():
    chat = ScheduleSpec(name="chat-cleanup", actor_name="chat_messages_cleanup",
                        cron="0 2 * * *")

    result = schedules_sync(specs=[chat, SPEC])

    assert result.actor_missing == ["chat-cleanup"]
    assert list(Schedule.objects.values_list("name", flat=True)) == ["log-cleanup"]


@pytest.mark.django_db
def test_duplicate_names_are_refused():
    with pytest.raises(ValueError, match="declared twice: log-cleanup"):
        schedules_sync(specs=[SPEC, SPEC])
    assert not Schedule.objects.exists()
