"""Default schedules, declared by the app that owns the actor.

Each app's ``tasks.py`` may define ``SCHEDULES: list[ScheduleSpec]`` next to its actors.
``manage.py schedules_sync`` installs them as ``jobs.Schedule`` rows without overwriting
staff edits. A default is declared only for an actor that exists.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScheduleSpec:
    name: str  # stable, unique: the row's natural key
    actor_name: str
    cron: str  # five fields: minute hour day-of-month month day-of-week
    time_zone: str = "UTC"
    kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    misfire_grace_seconds: int = 3600
