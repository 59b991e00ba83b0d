"""Cron expressions and the APScheduler trigger that fires them at local wall-clock time.

Why not APScheduler 3's ``CronTrigger.from_crontab``: measured on APScheduler 3.11.3 with
``America/Toronto`` it (1) treats day-of-week 0 as Monday, not Sunday as crontab does (its
own documented 3.x quirk), so "Sunday 01:00" would fire on Mondays; (2) skips the 00:30 run
of the day after spring-forward (2026-03-09); (3) fires a 01:30 schedule twice on
fall-back day. ``WallClockCronTrigger`` matches the expression on naive local wall-clock
time with croniter (standard crontab semantics, including day-of-month OR day-of-week) and
only then attaches the zone. The DST rules are Vixie cron's and cronie's:

- A job at a fixed time (its hour field names hours: ``30 1 * * *``, ``0 9-17 * * 1-5``)
  runs once across a change. A time that does not exist (02:30 on spring-forward day)
  fires at the instant PEP 495 gives it with ``fold=0``, one hour later on the clock
  (03:30 EDT); a time that happens twice (01:30 on fall-back day) fires once, at its
  first occurrence (EDT).
- A job whose hour field is a wildcard or a step (``30 * * * *``, ``*/15 * * * *``,
  ``0 */2 * * *``) keeps its interval through both changes: it fires at every instant
  whose local wall clock matches, so in the repeated hour of fall-back day it fires in
  both (``30 * * * *`` fires 05:30Z and 06:30Z, both "01:30"), and across the gap of
  spring-forward the hour after it follows at once (01:30 EST, then 03:30 EDT).
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


def keeps_interval(expr: str) -> bool:
    """Whether ``expr``'s hour field is a wildcard or a step (``*``, ``*/2``, ``0-23/3``):
    such a schedule keeps its interval through DST changes; one at fixed hours runs once."""
    hour = expr.split()[1]
    return hour == "*" or "/" in hour


# How far a DST change can move the wall clock (Lord Howe's is 30 minutes, most are one
# hour): near a change, matches are searched this far either side of the first candidate.
_DST_WINDOW = timedelta(hours=3)


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
        self.keeps_interval = keeps_interval(self.expr)

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
        # Compared in UTC throughout: aware datetimes sharing a tzinfo compare by wall clock.
        candidate = self._first_at_or_after(start, self._naive(start))
        if not (self._near_change(start) or self._near_change(candidate)):
            return self._canonical(candidate)
        # Near a DST change wall-clock order and real order part: the second "01:30" of
        # fall-back day comes after "01:45" of the first pass. Look at every match from
        # a window before ``start`` to a window after the candidate; take the earliest.
        best = candidate
        limit = self._naive(candidate) + _DST_WINDOW
        matches = croniter(self._pattern(), self._naive(start) - _DST_WINDOW)
        while (naive := matches.get_next(datetime)) <= limit:
            for instant in self._instants(naive):
                if start <= instant.astimezone(UTC) < best.astimezone(UTC):
                    best = instant
        return self._canonical(best)

    def _canonical(self, moment: datetime) -> datetime:
        """The instant as the zone's real local time (a nonexistent 02:30 EST that fold=0
        produced comes back as 03:30 EDT)."""
        return moment.astimezone(UTC).astimezone(self.timezone)

    def _naive(self, moment: datetime) -> datetime:
        return moment.astimezone(self.timezone).replace(tzinfo=None, microsecond=0)

    def _first_at_or_after(self, start: datetime, naive_start: datetime) -> datetime:
        # croniter yields matches strictly after its start: begin one second earlier so a
        # match at ``start`` itself counts.
        matches = croniter(self._pattern(), naive_start - timedelta(seconds=1))
        while True:
            # fold=0: a nonexistent time maps one hour later, a repeated one to its first
            # occurrence. Matches whose instant is before ``start`` already happened (the
            # repeated hour of fall-back, or the gap merging with the hour after it).
            aware = matches.get_next(datetime).replace(tzinfo=self.timezone, fold=0)
            if aware.astimezone(UTC) >= start:
                return aware

    def _instants(self, naive: datetime) -> list[datetime]:
        """The instants a wall-clock match fires at: its first occurrence (or, when it does
        not exist, the instant fold=0 maps it to) and, for a schedule that keeps its
        interval, the second occurrence of a repeated time."""
        first = naive.replace(tzinfo=self.timezone, fold=0)
        if not self.keeps_interval:
            return [first]
        second = naive.replace(tzinfo=self.timezone, fold=1)
        exists = second.astimezone(UTC).astimezone(self.timezone).replace(tzinfo=None) == naive
        if second.utcoffset() != first.utcoffset() and exists:
            return [first, second]
        return [first]

    def _near_change(self, moment: datetime) -> bool:
        zone = self.timezone
        before = (moment - _DST_WINDOW).astimezone(zone).utcoffset()
        after = (moment + _DST_WINDOW).astimezone(zone).utcoffset()
        return before != after

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
    return schedule_trigger(cron=cron, time_zone=time_zone).get_next_fire_time(None, after)

