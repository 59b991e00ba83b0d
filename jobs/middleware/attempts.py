"""One attempt of a message: when it started, how long it waited and ran, how it ended.

Measured and classified once, shared by every middleware that reports on it: the
execution log (``JobExecution``) and the job statistics (``JobStatsMiddleware``) read the
same :class:`Attempt`, so a log line and a statistic can never disagree about a job.
``JobExecution``, first in ``DRAMATIQ_MIDDLEWARE``, starts it; the first middleware to ask
how it ended — after Dramatiq's ``Retries`` has decided, which is why both sit before
``Retries`` (the ``jobs.E00x`` checks enforce the order) — fixes its outcome and run time.

Inside an actor, :func:`current_attempt` says which attempt is running and whether it is
the last one: the platform's one statement of Dramatiq's retry rule.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

import dramatiq
from dramatiq.middleware import CurrentMessage, Retries

# Where the attempt rides: on Dramatiq's MessageProxy, which every hook of one delivery
# (process, skip, ack, nack) receives.
_ATTRIBUTE = "_jobsite_attempt"


class Outcome(StrEnum):
    SUCCEEDED = "succeeded"
    RETRYING = "retrying"  # the run raised and Retries re-enqueued it with a backoff
    FAILED = "failed"  # final: the message will not run again
    SKIPPED = "skipped"  # a middleware skipped it (too old, its schedule still running)


class Attempt:
    """The timing of one attempt. ``number`` is 1 for the first delivery of a message."""

    __slots__ = ("message_id", "number", "started", "started_ms", "wait_ms", "outcome",
                 "run_ms")

    def __init__(self, message_id: str, number: int, started: float, started_ms: float,
                 wait_ms: float) -> None:
        self.message_id = message_id
        self.number = number
        self.started = started  # time.monotonic()
        self.started_ms = started_ms  # unix ms
        self.wait_ms = wait_ms  # from when it became due (enqueue or eta) to its start
        self.outcome: Outcome | None = None
        self.run_ms: float | None = None  # None when it never ran (skipped)


def attempt_start(message: dramatiq.Message) -> Attempt:
    """Start timing ``message``'s attempt (``JobExecution.before_process_message``)."""
    now_ms = time.time() * 1000
    due = message.options.get("eta") or message.message_timestamp
    attempt = Attempt(message.message_id, message.options.get("retries", 0) + 1,
                      time.monotonic(), now_ms, max(0.0, now_ms - due))
    setattr(message, _ATTRIBUTE, attempt)
    return attempt


def attempt_of(message: dramatiq.Message) -> Attempt | None:
    """The attempt running ``message``, if :func:`attempt_start` saw it."""
    return getattr(message, _ATTRIBUTE, None)


def attempt_finish(message: dramatiq.Message, *, exception: BaseException | None = None,
                   skipped: bool = False) -> Attempt:
    """How ``message``'s attempt ended; the first call decides, later ones read it.

    Call it from an ``after_process_message`` hook that runs after ``Retries`` (it reads
    ``message.failed``), or from ``after_skip_message`` with ``skipped=True``.
    """
    attempt = attempt_of(message)
    if attempt is None:  # processing began before the middleware was installed
        attempt = Attempt(message.message_id, message.options.get("retries", 0) + 1,
                          time.monotonic(), time.time() * 1000, 0.0)
        setattr(message, _ATTRIBUTE, attempt)
    if attempt.outcome is None:
        if skipped:
            attempt.outcome = Outcome.SKIPPED
        else:
            attempt.run_ms = (time.monotonic() - attempt.started) * 1000
            if exception is None:
                attempt.outcome = Outcome.SUCCEEDED
            elif message.failed:
                attempt.outcome = Outcome.FAILED
            else:
                attempt.outcome = Outcome.RETRYING
    return attempt


def is_final_attempt(message: dramatiq.Message, broker: dramatiq.Broker | None = None) -> bool:
    """Whether a failure of this attempt would end the message: Dramatiq's own rule.

    ``Retries`` fails a message whose ``retries`` (failures so far) reached its
    ``max_retries`` (the message's option, else the actor's, else the middleware's);
    ``max_retries=None`` retries for ever. A ``throws`` exception ends any attempt, which
    this cannot know in advance. Actors with ``retry_when`` are not used by Jobsite.
    """
    broker = broker or dramatiq.get_broker()
    actor = broker.get_actor(message.actor_name)
    default = next((m.max_retries for m in broker.middleware if isinstance(m, Retries)), 20)
    max_retries = message.options.get("max_retries", actor.options.get("max_retries", default))
    return max_retries is not None and message.options.get("retries", 0) >= max_retries


@dataclass(frozen=True)
class CurrentAttempt:
    """What an actor may ask about the attempt it runs in."""

    message_id: str
    number: int
    final: bool  # no retry left if this attempt fails
    schedule_id: int | None  # set when a schedule fired the message
    scheduled_for: str | None  # the schedule's tick (UTC ISO 8601)

    @property
    def run_key(self) -> str:
        """Names the run this attempt belongs to, the same for all its attempts: a
        schedule's tick, or else the message (Dramatiq retries keep the message id)."""
        if self.schedule_id is not None and self.scheduled_for:
            return f"schedule:{self.schedule_id}:{self.scheduled_for}"
        return f"message:{self.message_id}"


def current_attempt() -> CurrentAttempt | None:
    """The attempt the calling actor runs in; ``None`` outside a worker (a shell, a test
    calling the service directly)."""
    message = CurrentMessage.get_current_message()
    if message is None:
        return None
    schedule_id = message.options.get("schedule_id")
    return CurrentAttempt(
        message_id=message.message_id,
        number=message.options.get("retries", 0) + 1,
        final=is_final_attempt(message),
        schedule_id=schedule_id if isinstance(schedule_id, int) else None,
        scheduled_for=message.options.get("scheduled_for"),
    )
