"""Jobsite's queues and the defaults every actor on them starts from.

This is the one place queue names, priorities, retry budgets and time limits are defined.
An actor declares its queue through :func:`jobsite_actor` and may override any default.
Workers run per queue group (see the Procfile), because Dramatiq's ``priority`` only
orders messages a worker has already prefetched: a separate process is what keeps an
image backlog from delaying an email.
"""

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import dramatiq


class Queue(StrEnum):
    EMAILS = "emails"
    PAYMENTS = "payments"
    PUSH = "push"
    IMAGES = "images"
    MAINTENANCE = "maintenance"
    ANALYTICS = "analytics"


@dataclass(frozen=True)
class QueuePolicy:
    """Defaults for actors on one queue. Times are milliseconds, as Dramatiq takes them."""

    priority: int  # lower runs first among prefetched messages
    max_retries: int
    min_backoff: int
    max_backoff: int
    time_limit: int


SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

QUEUE_POLICIES: dict[Queue, QueuePolicy] = {
    # Seed 12.2.3: emails retry at most 5 times, exponential backoff from 15 s.
    Queue.EMAILS: QueuePolicy(0, 5, 15 * SECOND, 30 * MINUTE, 2 * MINUTE),
    Queue.PAYMENTS: QueuePolicy(0, 8, 15 * SECOND, 2 * HOUR, 2 * MINUTE),
    Queue.PUSH: QueuePolicy(10, 5, 10 * SECOND, 30 * MINUTE, 1 * MINUTE),
    Queue.IMAGES: QueuePolicy(50, 3, 30 * SECOND, 30 * MINUTE, 5 * MINUTE),
    Queue.MAINTENANCE: QueuePolicy(80, 3, 1 * MINUTE, 1 * HOUR, 60 * MINUTE),
    Queue.ANALYTICS: QueuePolicy(90, 3, 1 * MINUTE, 1 * HOUR, 30 * MINUTE),
}

# Groups of queues that share a worker process, highest priority first. The Procfile and
# the benchmark start one worker per group.
WORKER_GROUPS: dict[str, tuple[Queue, ...]] = {
    "high": (Queue.EMAILS, Queue.PAYMENTS),
    "push": (Queue.PUSH,),
    "images": (Queue.IMAGES,),
    "batch": (Queue.MAINTENANCE, Queue.ANALYTICS),
}


class PermanentError(Exception):
    """Raised by an actor when retrying cannot help: bad input, a provider's 4xx.

    Actors declared with :func:`jobsite_actor` never retry it; the message fails at once
    and lands in the failed-job list.
    """


def actor_options(queue: Queue, **overrides: Any) -> dict[str, Any]:
    """The Dramatiq options for an actor on ``queue``, with ``overrides`` applied."""
    policy = QUEUE_POLICIES[queue]
    options: dict[str, Any] = {
        "queue_name": queue.value,
        "priority": policy.priority,
        "max_retries": policy.max_retries,
        "min_backoff": policy.min_backoff,
        "max_backoff": policy.max_backoff,
        "time_limit": policy.time_limit,
        "throws": (PermanentError,),
    }
    extra_throws = overrides.pop("throws", ())
    if isinstance(extra_throws, type):
        extra_throws = (extra_throws,)
    # An actor may add exceptions it never retries, but PermanentError always stays one.
    options["throws"] = (PermanentError, *(e for e in extra_throws if e is not PermanentError))
    options.update(overrides)
    return options


def jobsite_actor(*, queue: Queue, actor_name: str, **overrides: Any):
    """Declare a Dramatiq actor with ``queue``'s defaults.

    ``actor_name`` is required and stable: it is what the broker, the schedules and the
    failed-job list store, so renaming a function never strands queued messages.
    """
    return dramatiq.actor(actor_name=actor_name, **actor_options(queue, **overrides))
