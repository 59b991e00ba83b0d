"""Stateful actors: actors whose work is a database record moving through states.

An email row goes ``queued`` → ``sending`` → ``sent``; a push, an image, a payment event
will do the same. For such an actor the record, not the Redis message, is the truth, and
two things the platform does depend on being able to ask the record:

- **Re-driving lost work** (``jobs.recovery``): a record left unfinished whose message is
  no longer in Redis — it never got there (Redis failed between the commit and the
  enqueue), or Redis lost it (restarted without its data) — is sent again.
- **Retry from the failed-job list** (``jobs.services.failed_jobs_retry``): the record is
  put back to its first state before the message is sent again, so "retried" means the
  work is done again; a record already done is left alone.

An app registers each of its stateful actors once, in its ``tasks`` module, with
:func:`stateful_actor`: how to list its unfinished records, and how to put a record back
for a retry. The actor itself must stay idempotent (claim the record under a condition):
a re-driven message may meet a record another delivery already finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dramatiq


@dataclass(frozen=True)
class Unfinished:
    """One record that should still be driven by a message: the message it was enqueued
    with (its id is how the platform finds it in Redis), the arguments to send again, and
    ``eta``, when it was due not before (a push waiting for the end of quiet hours)."""

    message_id: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    eta: datetime | None = None


@dataclass(frozen=True)
class StatefulActor:
    actor: dramatiq.Actor
    # Records not in a final state whose last change is older than the given time, oldest
    # first, at most ``limit`` of them.
    unfinished: Callable[[datetime, int], Iterable[Unfinished]]
    # Put the record of a failed message (its args and kwargs) back to its first state for
    # a retry; False when there is nothing to do again (already done, or gone).
    prepare_retry: Callable[..., bool]

    @property
    def actor_name(self) -> str:
        return self.actor.actor_name


_REGISTRY: dict[str, StatefulActor] = {}


def stateful_actor(actor: dramatiq.Actor, *,
                   unfinished: Callable[[datetime, int], Iterable[Unfinished]],
                   prepare_retry: Callable[..., bool]) -> StatefulActor:
    """Register ``actor`` as stateful (see the module docstring). Registering it again
    replaces the earlier registration."""
    entry = StatefulActor(actor=actor, unfinished=unfinished, prepare_retry=prepare_retry)
    _REGISTRY[actor.actor_name] = entry
    return entry


def stateful_actors() -> dict[str, StatefulActor]:
    """Every registered stateful actor by name (the apps' tasks modules are imported)."""
    from jobs.scheduling.selectors import tasks_modules

    tasks_modules()
    return dict(_REGISTRY)
