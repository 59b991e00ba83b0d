"""Cron and time zones, by time travel: fire times computed from the real trigger across
the 2026 DST changes of America/Toronto (spring-forward 2026-03-08, fall-back 2026-11-01)."""

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from jobs.scheduling.triggers import (
    WallClockCronTrigger,
    cron_describe,
    cron_validate,
    next_fire_time,
    time_zone_validate,
)

TORONTO = ZoneInfo("America/Toronto")


def fires(expr: str, zone: str, start: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire instants (UTC) after ``start``, walking as APScheduler does."""
    trigger = WallClockCronTrigger(expr, zone)
    result, previous, now = [], None, start
    for _ in range(count):
        fire = trigger.get_next_fire_time(previous, now)
        result.append(fire.astimezone(UTC))
        previous = now = fire
    return result


def local(instants: list[datetime]) -> list[str]:
    return [i.astimezone(TORONTO).strftime("%m-%d %H:%M %Z") for i in instants]


def test_0030_toronto_keeps_local_time_across_spring_forward():
    runs = fires("30 0 * * *", "America/Toronto", datetime(2026, 3, 6, 12, tzinfo=UTC), 4)

    assert local(runs) == ["03-07 00:30 EST", "03-08 00:30 EST", "03-09 00:30 EDT",
                           "03-10 00:30 EDT"]
    assert [r.hour for r in runs] == [5, 5, 4, 4]  # UTC moves, the wall clock does not


def test_0030_toronto_keeps_local_time_across_fall_back():
    runs = fires("30 0 * * *", "America/Toronto", datetime(2026, 10, 30, 12, tzinfo=UTC), 4)

    assert local(runs) == ["10-31 00:30 EDT", "11-01 00:30 EDT", "11-02 00:30 EST",
                           "11-03 00:30 EST"]


def test_0230_toronto_on_spring_forward_day_fires_once_at_0330_edt():
    # 02:30 does not exist on 2026-03-08 (02:00 EST jumps to 03:00 EDT). Documented rule:
    # it fires once, one hour later on the clock, at the instant 02:30 EST would have been.
    runs = fires("30 2 * * *", "America/Toronto", datetime(2026, 3, 6, 12, tzinfo=UTC), 4)

    assert local(runs) == ["03-07 02:30 EST", "03-08 03:30 EDT", "03-09 02:30 EDT",
                           "03-10 02:30 EDT"]
    assert runs[1] == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_0230_toronto_on_fall_back_day_fires_once():
    runs = fires("30 2 * * *", "America/Toronto", datetime(2026, 10, 30, 12, tzinfo=UTC), 4)

    assert local(runs) == ["10-31 02:30 EDT", "11-01 02:30 EST", "11-02 02:30 EST",
                           "11-03 02:30 EST"]


def test_repeated_hour_on_fall_back_day_fires_once_at_first_occurrence():
    # 01:30 happens twice on 2026-11-01 (EDT, then EST): one run, at the first.
    runs = fires("30 1 * * *", "America/Toronto", datetime(2026, 10, 31, 12, tzinfo=UTC), 3)

    assert local(runs) == ["11-01 01:30 EDT", "11-02 01:30 EST", "11-03 01:30 EST"]


def test_scheduler_started_inside_repeated_hour_does_not_refire_first_pass():
    # Started at 01:45 EST (second pass); 01:40 already fired during the EDT pass.
    started = datetime(2026, 11, 1, 6, 45, tzinfo=UTC)

    assert local(fires("40 1 * * *", "America/Toronto", started, 1)) == ["11-02 01:40 EST"]


def test_hourly_schedule_across_spring_forward_has_no_duplicate_instant():
    runs = fires("30 * * * *", "America/Toronto", datetime(2026, 3, 8, 5, 0, tzinfo=UTC), 4)

    assert local(runs) == ["03-08 00:30 EST", "03-08 01:30 EST", "03-08 03:30 EDT",
                           "03-08 04:30 EDT"]


def utc(instants: list[datetime]) -> list[str]:
    return [i.strftime("%H:%MZ") for i in instants]


def gaps_minutes(instants: list[datetime]) -> set[float]:
    return {(b - a).total_seconds() / 60 for a, b in zip(instants, instants[1:], strict=False)}


# Interval schedules (hour field a wildcard or a step) keep their interval through both
# DST changes; fixed-time schedules run once (the tests above). The Vixie cron/cronie rule.

def test_hourly_schedule_keeps_its_interval_through_fall_back():
    # Before the fix: 04:30Z, 05:30Z, 07:30Z — silent for two hours.
    runs = fires("30 * * * *", "America/Toronto", datetime(2026, 11, 1, 3, 0, tzinfo=UTC), 5)

    assert utc(runs) == ["03:30Z", "04:30Z", "05:30Z", "06:30Z", "07:30Z"]
    assert local(runs) == ["10-31 23:30 EDT", "11-01 00:30 EDT", "11-01 01:30 EDT",
                           "11-01 01:30 EST", "11-01 02:30 EST"]


def test_hourly_schedule_keeps_its_interval_through_spring_forward():
    runs = fires("30 * * * *", "America/Toronto", datetime(2026, 3, 8, 4, 0, tzinfo=UTC), 5)

    assert utc(runs) == ["04:30Z", "05:30Z", "06:30Z", "07:30Z", "08:30Z"]
    assert gaps_minutes(runs) == {60}


@pytest.mark.parametrize("start", [datetime(2026, 11, 1, 3, 50, tzinfo=UTC),
                                   datetime(2026, 3, 8, 5, 50, tzinfo=UTC)],
                         ids=["fall-back", "spring-forward"])
def test_every_fifteen_minutes_never_gaps_or_repeats(start):
    runs = fires("*/15 * * * *", "America/Toronto", start, 16)

    assert gaps_minutes(runs) == {15}


def test_a_scheduler_started_in_the_first_pass_of_the_repeated_hour_runs_the_second():
    # 01:50 EDT: the EST pass of 01:00–01:45 is still ahead, and an interval schedule runs it.
    started = datetime(2026, 11, 1, 5, 50, tzinfo=UTC)

    assert local(fires("*/15 * * * *", "America/Toronto", started, 2)) == [
        "11-01 01:00 EST", "11-01 01:15 EST"]


def test_hour_step_schedule_follows_the_wall_clock_hours_through_both_changes():
    spring = fires("0 */2 * * *", "America/Toronto", datetime(2026, 3, 8, 4, tzinfo=UTC), 3)
    fall = fires("0 */2 * * *", "America/Toronto", datetime(2026, 11, 1, 3, tzinfo=UTC), 3)

    # 02:00 does not exist on spring-forward day: it runs at 03:00 EDT, once.
    assert local(spring) == ["03-08 00:00 EST", "03-08 03:00 EDT", "03-08 04:00 EDT"]
    # The repeated hour (01:xx) matches no even hour: 00:00 EDT, then 02:00 EST.
    assert local(fall) == ["11-01 00:00 EDT", "11-01 02:00 EST", "11-01 04:00 EST"]


def test_fixed_time_schedules_still_run_once_across_both_changes():
    fall = fires("30 1 * * *", "America/Toronto", datetime(2026, 10, 31, 12, tzinfo=UTC), 2)
    spring = fires("30 2 * * *", "America/Toronto", datetime(2026, 3, 7, 12, tzinfo=UTC), 2)

    assert local(fall) == ["11-01 01:30 EDT", "11-02 01:30 EST"]
    assert local(spring) == ["03-08 03:30 EDT", "03-09 02:30 EDT"]


def test_utc_schedule_fires_in_utc():
    runs = fires("0 2 * * *", "UTC", datetime(2026, 3, 7, 12, tzinfo=UTC), 3)

    assert runs == [datetime(2026, 3, 8, 2, tzinfo=UTC), datetime(2026, 3, 9, 2, tzinfo=UTC),
                    datetime(2026, 3, 10, 2, tzinfo=UTC)]


def test_day_of_week_zero_is_sunday_as_in_crontab():
    # 2026-11-29 is a Sunday. (APScheduler 3's own from_crontab would pick Monday.)
    after = datetime(2026, 11, 26, tzinfo=UTC)

    assert next_fire_time(cron="0 1 * * 0", time_zone="UTC", after=after) == datetime(
        2026, 11, 29, 1, tzinfo=UTC)


def test_first_of_month_schedule():
    after = datetime(2026, 11, 29, 12, tzinfo=UTC)

    fire = next_fire_time(cron="0 10 1 * *", time_zone="America/Toronto", after=after)

    assert fire == datetime(2026, 12, 1, 10, tzinfo=TORONTO)
    assert fire.astimezone(UTC).hour == 15


def test_next_fire_time_reports_real_local_time_in_the_gap():
    fire = next_fire_time(cron="30 2 8 3 *", time_zone="America/Toronto",
                          after=datetime(2026, 3, 1, tzinfo=UTC))

    assert (fire.hour, fire.minute, fire.tzname()) == (3, 30, "EDT")


@pytest.mark.parametrize("expr", ["", "* * * *", "0 0 * * * *", "61 * * * *",
                                  "0 25 * * *", "0 0 32 * *", "bogus",
                                  "0 0 31 2 *"])
def test_invalid_cron_is_rejected(expr):
    with pytest.raises(ValidationError):
        cron_validate(expr)


def test_cron_is_normalised_and_described():
    assert cron_validate("  30   2 * *  0 ") == "30 2 * * 0"
    assert cron_describe("30 2 * * 0") == "At 02:30, only on Sunday"
    assert cron_describe("not cron") == ""


@pytest.mark.parametrize("name", ["Toronto", "America/Totonto", "", "EST5EDT "])
def test_invalid_time_zone_is_rejected(name):
    with pytest.raises(ValidationError):
        time_zone_validate(name)


def test_trigger_survives_pickling_as_the_job_store_stores_it():
    import pickle

    trigger = WallClockCronTrigger("0 3 * * *", "America/Toronto")
    copy = pickle.loads(pickle.dumps(trigger))

    assert str(copy) == str(trigger) == "cron[0 3 * * *] America/Toronto"
    now = datetime(2026, 5, 1, tzinfo=UTC)
    assert copy.get_next_fire_time(None, now) == trigger.get_next_fire_time(None, now)
