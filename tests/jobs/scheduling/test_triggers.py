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
