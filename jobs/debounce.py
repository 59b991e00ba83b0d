"""Debounced jobs: a burst of calls for one subject runs the actor once, after the burst.

A review written, edited or removed asks for its contractor's rating to be recalculated; a
profile edit asks for its search entry to be rebuilt. Fifty such events for one profile in
a minute need one run, not fifty. :func:`enqueue_debounced` sends the actor only when no
run for the same actor and arguments is pending: at commit it claims
``<ns>:debounce:<actor>:<digest of the arguments>`` (SET NX) and, if it got it, enqueues
the message ``delay_ms`` later with the option ``debounce_key``. Later calls find the key
and send nothing. :class:`jobs.middleware.debounce.DebounceRelease` deletes the key just
before the actor runs, so a change committed after that point claims it again and gets a
run of its own, and every change committed before it is seen by the run that starts.

Why this is safe to lose: the actor derives its result from the rows alone (idempotent),
the claim expires ``delay_ms`` + :data:`CLAIM_MARGIN_MS` after it was taken (a message
stuck behind a backlog or lost with Redis blocks new runs for that long at most), and the
apps that debounce also run a full nightly pass.
"""

import hashlib
import json
import logging
from typing import Any

import dramatiq
from django.db import transaction

from jobs.redis import get_redis, key

logger = logging.getLogger(__name__)

#: How long a claim outlives its delay: time for the message to wait in its queue.
CLAIM_MARGIN_MS = 10 * 60 * 1000
OPTION = "debounce_key"


def debounce_key(actor_name: str, args: tuple, kwargs: dict) -> str:
    """The Redis key of a pending debounced run of ``actor_name`` with these arguments."""
    canonical = json.dumps([list(args), kwargs], sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(canonical.encode()).hexdigest()[:24]
    return key("debounce", actor_name, digest)


def enqueue_debounced(actor: dramatiq.Actor, *args: Any, delay_ms: int, **kwargs: Any) -> None:
    """Run ``actor(*args, **kwargs)`` about ``delay_ms`` after the first of a burst of calls.

    Sent after the surrounding transaction commits (nothing on rollback), like
    :func:`jobs.enqueue.enqueue_on_commit`. Arguments must round-trip through JSON.
    """
    name = debounce_key(actor.actor_name, args, kwargs)

    def claim_and_send() -> None:
        client = get_redis()
        if not client.set(name, 1, nx=True, px=delay_ms + CLAIM_MARGIN_MS):
            return  # a run is already pending; it starts after this commit
        message = actor.message_with_options(args=args, kwargs=kwargs, **{OPTION: name})
        try:
            actor.broker.enqueue(message, delay=delay_ms)
        except Exception:
            client.delete(name)  # let the next call claim it again
            raise

    transaction.on_commit(claim_and_send, robust=False)


def debounce_release(message: dramatiq.Message) -> None:
    """Let the next call claim a new run: the pending one is starting now."""
    name = message.options.get(OPTION)
    if name:
        get_redis().delete(name)
