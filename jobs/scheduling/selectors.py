"""Reads for the scheduler: registered actors, default schedule specs, next fire times."""

import importlib
import importlib.util
import inspect
from datetime import datetime
from types import ModuleType

import dramatiq
from django.apps import apps
from django.utils import timezone

from jobs.models import Schedule
from jobs.scheduling.specs import ScheduleSpec
from jobs.scheduling.triggers import next_fire_time


def tasks_modules() -> list[ModuleType]:
    """Every installed app's ``tasks`` module, imported.

    django-dramatiq imports them only in ``rundramatiq``; the web process (admin) and the
    scheduler need them too, to know which actors exist. Importing is idempotent.
    """
    modules = []
    for app_config in apps.get_app_configs():
        module_name = f"{app_config.name}.tasks"
        if importlib.util.find_spec(module_name) is not None:
            modules.append(importlib.import_module(module_name))
    return modules


def registered_actor_names() -> list[str]:
    """Names of every actor declared on the broker, sorted."""
    tasks_modules()
    return sorted(dramatiq.get_broker().get_declared_actors())


def registered_actor(name: str) -> dramatiq.Actor | None:
    tasks_modules()
    broker = dramatiq.get_broker()
    if name not in broker.get_declared_actors():
        return None
    return broker.get_actor(name)


def actor_kwargs_error(actor: dramatiq.Actor, kwargs: dict) -> str | None:
    """Why ``kwargs`` cannot call ``actor`` (missing/unknown argument), or ``None``."""
    try:
        inspect.signature(actor.fn).bind(**kwargs)
    except TypeError as exc:
        return str(exc)
    return None


def default_schedule_specs() -> list[ScheduleSpec]:
    """Every ``SCHEDULES`` declared in an installed app's ``tasks`` module, in app order."""
    specs: list[ScheduleSpec] = []
    for module in tasks_modules():
        specs.extend(getattr(module, "SCHEDULES", []))
    return specs


def schedule_next_run_at(schedule: Schedule, *, after: datetime | None = None
                         ) -> datetime | None:
    """When ``schedule`` fires next by its cron and zone (``None`` if disabled or invalid)."""
    if not schedule.enabled:
        return None
    try:
        return next_fire_time(cron=schedule.cron, time_zone=schedule.time_zone,
                              after=after or timezone.now())
    except Exception:  # a row edited outside the validated form: show nothing, never crash
        return None


def scheduler_job_next_run_at(schedule: Schedule) -> datetime | None:
    """The next run time the running scheduler has stored for ``schedule`` (DjangoJobStore)."""
    from django_apscheduler.models import DjangoJob

    return (DjangoJob.objects.filter(id=schedule.job_id)
            .values_list("next_run_time", flat=True).first())
