"""Cron expressions and the APScheduler trigger that fires them at local wall-clock time.

Why not APScheduler 3's ``CronTrigger.from_crontab``: measured on APScheduler 3.11.3 with
``America/Toronto`` it (1) treats day-of-week 0 as Monday, not Sunday as crontab does (its
own documented 3.x quirk), so "Sunday 01:00" would fire on Mondays; (2) skips the 00:30 run
of the day after spring-forward (2026-03-09); (3) fires a 01:30 schedule twice on
fall-back day. ``WallClockCronTrigger`` matches the expression on naive local wall-clock
time with croniter (standard crontab semantics, including day-of-month OR day-of-week) and
only then attaches the zone, which makes the DST rules explicit:

- a wall-clock time that does not exist (02:30 on spring-forward day) fires at the instant
  PEP 495 gives it with ``fold=0``: one hour later on the clock (03:30 EDT), once;
- a wall-clock time that happens twice (01:30 on fall-back day) fires once, at its first
  occurrence (EDT).
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from apscheduler.triggers.base import BaseTrigger
from cron_descriptor import Options, get_description
from croniter import CroniterBadDateError, croniter
from django.core.exceptions import ValidationError

CRON_FIELDS = 5


def cron_validate(expr: str) -> str:
    """Return ``expr`` normalised (single spaces); raise ``ValidationError`` if invalid.

    Exactly five fields (minute hour day-of-month month day-of-week), as crontab has.
    """
    fields = (expr or "").split()
    if len(fields) != CRON_FIELDS:
        raise ValidationError(
            "A cron expression has exactly 5 fields (minute hour day-of-month month "
            "day-of-week); got %(count)s.", params={"count": len(fields)}, code="cron_fields",
        )
    normalised = " ".join(fields)
    if not croniter.is_valid(normalised):
        raise ValidationError("%(expr)s is not a valid cron expression.",
                              params={"expr": normalised}, code="cron_invalid")
    try:
        croniter(normalised, datetime(2000, 1, 1)).get_next(datetime)
    except CroniterBadDateError as exc:  # valid syntax, impossible date (31 February)
        raise ValidationError("%(expr)s never matches a real date.",
                              params={"expr": normalised}, code="cron_never") from exc
    return normalised


def cron_describe(expr: str) -> str:
    """A human-readable description ("At 02:30 AM, only on Sunday"), or "" if invalid."""
    try:
        options = Options()
        options.use_24hour_time_format = True
        return get_description(cron_validate(expr), options)
    except Exception:  # cron-descriptor raises its own types for odd input
        return ""


def time_zone_validate(name: str) -> ZoneInfo:
    """The ``ZoneInfo`` for an IANA name; ``ValidationError`` otherwise."""
    if not name or name not in available_timezones():
        raise ValidationError("%(value)s is not an IANA time zone.", params={"value": name},
                              code="time_zone_invalid")
    try:
        return ZoneInfo(name)
    except ZoneInfoNotFoundError as exc:  # listed but not loadable: broken tzdata
        raise ValidationError("%(value)s is not an IANA time zone.",
                              params={"value": name}, code="time_zone_invalid") from exc


class WallClockCronTrigger(BaseTrigger):
    """Fires when the local wall clock of ``time_zone`` matches ``expr``.

    ``second`` (a cron seconds field such as ``*/2``) exists for ``runscheduler
    --tick-seconds`` only, so that leader-election tests see several ticks in seconds.
    """

    def __init__(self, expr: str, time_zone: str = "UTC", second: str | None = None):
        self.expr = cron_validate(expr)
        self.time_zone = time_zone
        self.second = second
        self.timezone = ZoneInfo(time_zone)  # the attribute name APScheduler looks for

    def __getstate__(self):
        return {"version": 1, "expr": self.expr, "time_zone": self.time_zone,
                "second": self.second}

    def __setstate__(self, state):
        self.__init__(state["expr"], state["time_zone"], state.get("second"))

    def _pattern(self) -> str:
        return f"{self.expr} {self.second}" if self.second else self.expr

    def get_next_fire_time(self, previous_fire_time, now):
        # As CronTrigger does: walk on from the previous fire time when there is one (so
        # missed runs can be counted), never from before it.
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            previous = previous_fire_time.astimezone(UTC)
            start = min(start, previous + timedelta(microseconds=1))
            if start == previous:
                start += timedelta(microseconds=1)
        naive_start = start.astimezone(self.timezone).replace(tzinfo=None, microsecond=0)
        # croniter yields matches strictly after its start: begin one second earlier so a
        # match at ``start`` itself counts.
        matches = croniter(self._pattern(), naive_start - timedelta(seconds=1))
        while True:
            # fold=0: a nonexistent time maps one hour later, a repeated one to its first
            # occurrence. Matches whose instant is before ``start`` already happened (the
            # repeated hour of fall-back, or the gap merging with the hour after it).
            # Compared in UTC: aware datetimes sharing a tzinfo compare by wall clock.
            aware = matches.get_next(datetime).replace(tzinfo=self.timezone, fold=0)
            if aware.astimezone(UTC) >= start:
                return aware

    def __str__(self) -> str:
        suffix = f" second={self.second}" if self.second else ""
        return f"cron[{self.expr}]{suffix} {self.time_zone}"

    def __repr__(self) -> str:
        return f"<WallClockCronTrigger ({self})>"


def schedule_trigger(*, cron: str, time_zone: str, tick_seconds: int | None = None
                     ) -> WallClockCronTrigger:
    """The trigger for a schedule; ``tick_seconds`` replaces the cron by a seconds tick."""
    time_zone_validate(time_zone)
    if tick_seconds:
        return WallClockCronTrigger("* * * * *", time_zone, second=f"*/{tick_seconds}")
    return WallClockCronTrigger(cron, time_zone)


def next_fire_time(*, cron: str, time_zone: str, after: datetime) -> datetime:
    """When a schedule next fires after ``after`` (aware), as a real local time of its zone
    (a nonexistent 02:30 comes back as 03:30 EDT)."""
    trigger = schedule_trigger(cron=cron, time_zone=time_zone)
    return trigger.get_next_fire_time(None, after).astimezone(UTC).astimezone(trigger.timezone)

