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
    _options: dict[str, Any] | None = None, **kwargs: Any,
) -> str:
    """Send ``actor(*args, **kwargs)`` once the current transaction commits.

    Arguments must round-trip through JSON: ids and small values, never model instances.
    ``_options`` become message options (for example ``schedule_id``).

    Returns:
      The message id the message will carry.
    """
    message = actor.message_with_options(args=args, kwargs=kwargs, **(_options or {}))
    transaction.on_commit(
        lambda: actor.broker.enqueue(message, delay=_delay_ms), using=_using, robust=False
    )
    return message.message_id
