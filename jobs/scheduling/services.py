"""Writes of the scheduler: enqueue a schedule's actor, record outcomes, save staff edits,
install default schedules."""

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_apscheduler.models import DjangoJobExecution

from jobs.enqueue import enqueue_message_on_commit
from jobs.models import Schedule, ScheduleOutcome
from jobs.scheduling import selectors
from jobs.scheduling.specs import ScheduleSpec
from jobs.signals import operator_action

logger = logging.getLogger(__name__)

# Fields a default schedule (ScheduleSpec) sets; a staff edit of any of them customises it.
SPEC_FIELDS = ("actor_name", "cron", "time_zone", "kwargs", "description",
               "misfire_grace_seconds")
STAFF_EDIT_FIELDS = frozenset(SPEC_FIELDS) | {"enabled", "name"}


class ScheduleActorMissing(Exception):
    """The schedule names an actor that is not registered (an app was removed)."""


def schedule_enqueue(*, schedule: Schedule, manual: bool = False,
                     scheduled_for: str | None = None) -> str:
    """Enqueue ``schedule``'s actor with its kwargs and record the run; returns the message id.

    Only enqueues: a worker does the work. The message carries option ``schedule_id`` (the
    per-schedule run lock and the failure alerts key on it) and, for a fire, option
    ``scheduled_for`` (the tick's UTC time, ISO 8601). ``manual`` is "Run now".

    Raises:
      ScheduleActorMissing: the actor is not registered; the row records the error.
    """
    actor = selectors.registered_actor(schedule.actor_name)
    now = timezone.now()
    if actor is None:
        Schedule.objects.filter(pk=schedule.pk).update(
            last_run_at=now, last_outcome=ScheduleOutcome.ERROR, last_outcome_at=now,
            last_error=f"actor {schedule.actor_name!r} is not registered",
        )
        raise ScheduleActorMissing(schedule.actor_name)
    with transaction.atomic():
        options = {"schedule_id": schedule.pk}
        if scheduled_for:
            options["scheduled_for"] = scheduled_for
        message = actor.message_with_options(kwargs=schedule.kwargs, **options)
        message_id = enqueue_message_on_commit(actor, message)
        Schedule.objects.filter(pk=schedule.pk).update(
            last_run_at=now, last_outcome=ScheduleOutcome.ENQUEUED, last_outcome_at=now,
            last_message_id=message_id, last_error="",
        )
    logger.info("schedule enqueued", extra={"schedule_id": schedule.pk, "manual": manual,
                                            "actor": schedule.actor_name,
                                            "message_id": message_id})
    return message_id


def schedule_run_now(*, schedule: Schedule, user: Any = None) -> str:
    """Staff's "Run now": enqueue at once (never run inside the request) and audit it."""
    with transaction.atomic():
        message_id = schedule_enqueue(schedule=schedule, manual=True)
        operator_action.send(Schedule, action="schedule.run_now", resource=schedule,
                             actor=user, metadata={"message_id": message_id})
    return message_id


def schedule_record_outcome(*, schedule_id: int, message_id: str, outcome: ScheduleOutcome,
                            error: str = "") -> bool:
    """Record how the run ``message_id`` of a schedule ended (worker side).

    Only the latest run's outcome is kept: an older message finishing late does not
    overwrite it. Returns whether the row was updated.
    """
    now = timezone.now()
    updated = Schedule.objects.filter(pk=schedule_id, last_message_id=message_id).update(
        last_outcome=outcome, last_outcome_at=now, last_error=error[:200],
    )
    return bool(updated)


def schedule_record_missed(*, schedule_id: int, scheduled_at: datetime) -> None:
    """The scheduler was down past the misfire grace at ``scheduled_at``: record the miss."""
    now = timezone.now()
    Schedule.objects.filter(pk=schedule_id).update(
        last_outcome=ScheduleOutcome.MISSED, last_outcome_at=now,
        last_error=f"missed the run due {scheduled_at.isoformat()}",
    )
    logger.warning("schedule missed", extra={"schedule_id": schedule_id,
                                             "scheduled_at": scheduled_at.isoformat()})


def schedule_record_fire_error(*, schedule_id: int, error: str) -> None:
    now = timezone.now()
    Schedule.objects.filter(pk=schedule_id).update(
        last_run_at=now, last_outcome=ScheduleOutcome.ERROR, last_outcome_at=now,
        last_error=error[:200],
    )


def schedule_record_invalid(*, schedule_id: int, error: str) -> None:
    """The scheduler cannot build a trigger for this row (written around the form): say
    so on the row, once, without touching its last run."""
    error = error[:200]
    (Schedule.objects.filter(pk=schedule_id)
     .exclude(last_outcome=ScheduleOutcome.ERROR, last_error=error)
     .update(last_outcome=ScheduleOutcome.ERROR, last_outcome_at=timezone.now(),
             last_error=error))


def schedule_save(*, schedule: Schedule, changed_fields: list[str], user: Any = None
                  ) -> Schedule:
    """Save a staff edit. A default schedule edited by staff becomes customised, so
    ``schedules_sync`` never overwrites it."""
    creating = schedule.pk is None
    if schedule.is_default and STAFF_EDIT_FIELDS.intersection(changed_fields):
        schedule.is_customized = True
    with transaction.atomic():
        schedule.save()
        operator_action.send(Schedule, action="schedule.create" if creating else "schedule.update",
                             resource=schedule, actor=user,
                             metadata={"fields": sorted(changed_fields)})
    return schedule


def spec_fingerprint(spec: ScheduleSpec) -> str:
    """A hash of what a spec installs: a sync updates a row only when its spec changed."""
    values = {name: getattr(spec, name) for name in SPEC_FIELDS}
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass
class SyncResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    kept_staff_edits: list[str] = field(default_factory=list)
    actor_missing: list[str] = field(default_factory=list)


@transaction.atomic
def schedules_sync(*, specs: list[ScheduleSpec] | None = None) -> SyncResult:
    """Install default schedules: create missing rows, update defaults staff never edited.

    A spec whose actor is not registered is not installed (no placeholder actors). Rows are
    matched by name; a row staff created or customised is left as it is.

    Raises:
      ValueError: two specs share a name.
    """
    specs = selectors.default_schedule_specs() if specs is None else specs
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"default schedules declared twice: {', '.join(duplicates)}")
    registered = set(selectors.registered_actor_names())
    result = SyncResult()
    for spec in specs:
        if spec.actor_name not in registered:
            result.actor_missing.append(spec.name)
            continue
        fingerprint = spec_fingerprint(spec)
        values = {"actor_name": spec.actor_name, "cron": spec.cron,
                  "time_zone": spec.time_zone, "kwargs": dict(spec.kwargs),
                  "description": spec.description,
                  "misfire_grace_seconds": spec.misfire_grace_seconds,
                  "default_fingerprint": fingerprint, "is_default": True}
        row = Schedule.objects.select_for_update().filter(name=spec.name).first()
        if row is None:
            Schedule.objects.create(name=spec.name, **values)
            result.created.append(spec.name)
        elif not row.is_default or row.is_customized:
            result.kept_staff_edits.append(spec.name)
        elif row.default_fingerprint == fingerprint:
            result.unchanged.append(spec.name)
        else:
            Schedule.objects.filter(pk=row.pk).update(**values)
            result.updated.append(spec.name)
    return result


def schedule_executions_prune(*, older_than_days: int | None = None) -> int:
    """Delete django-apscheduler execution records past retention; returns how many."""
    days = (settings.SCHEDULE_EXECUTION_RETENTION_DAYS if older_than_days is None
            else older_than_days)
    cutoff = timezone.now() - timedelta(days=days)
    deleted, _ = DjangoJobExecution.objects.filter(run_time__lte=cutoff).delete()
    return deleted
