"""The one way services enqueue work: after the surrounding transaction commits.

An actor re-reads rows by id, so sending it before the commit risks it finding nothing
(or old data); sending it and then rolling back would run work for a change that never
happened. ``enqueue_on_commit`` builds the message now (so the caller gets its id) and
hands it to the broker only when the transaction commits; on rollback nothing is sent.
Outside a transaction (autocommit) it is sent at once.
"""

from typing import Any

import dramatiq
from django.db import transaction


def enqueue_on_commit(
    actor: dramatiq.Actor, *args: Any, _delay_ms: int | None = None, _using: str = "default",
    **kwargs: Any,
) -> str:
    """Send ``actor(*args, **kwargs)`` once the current transaction commits.

    Arguments must round-trip through JSON: ids and small values, never model instances.

    Returns:
      The message id the message will carry.
    """
    message = actor.message(*args, **kwargs)
    return enqueue_message_on_commit(actor, message, delay_ms=_delay_ms, using=_using)


def enqueue_message_on_commit(
    actor: dramatiq.Actor, message: dramatiq.Message, *, delay_ms: int | None = None,
    using: str = "default",
) -> str:
    """Send an already built ``message`` of ``actor`` once the transaction commits.

    For callers that need message options (``actor.message_with_options(...)``), such as
    the scheduler's ``schedule_id`` or a failed job's retry. Returns the message id.
    """
    transaction.on_commit(
        lambda: actor.broker.enqueue(message, delay=delay_ms), using=using, robust=False
    )
    return message.message_id
