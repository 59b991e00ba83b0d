"""The one way services enqueue work: after the surrounding transaction commits.

An actor re-reads rows by id, so sending it before the commit risks it finding nothing
(or old data); sending it and then rolling back would run work for a change that never
happened. ``enqueue_on_commit`` builds the message now (so the caller gets its id) and
hands it to the broker only when the transaction commits; on rollback nothing is sent.
Outside a transaction (autocommit) it is sent at once.

The messages a transaction enqueues go to Redis together, in one round trip at commit
(:meth:`jobs.broker.JobsiteRedisBroker.enqueue_many`): one commit callback per
transaction and savepoint depth (an "outbox") instead of one per message. A savepoint
that rolls back takes its own outbox with it, as Django does with its callbacks; messages
of different savepoint depths are sent in the order their outboxes were opened.
"""

import threading
from typing import Any

import dramatiq
from django.db import transaction


def enqueue_on_commit(
    actor: dramatiq.Actor, *args: Any, _delay_ms: int | None = None, _using: str = "default",
    _message_id: str | None = None, **kwargs: Any,
) -> str:
    """Send ``actor(*args, **kwargs)`` once the current transaction commits.

    Arguments must round-trip through JSON: ids and small values, never model instances.
    ``_message_id`` gives the message an id chosen beforehand — a stateful actor's record
    stores it in the same INSERT, so the record knows its message (``jobs.stateful``).

    Returns:
      The message id the message will carry.
    """
    if _message_id is None:
        message = actor.message(*args, **kwargs)
    else:
        message = dramatiq.Message(queue_name=actor.queue_name, actor_name=actor.actor_name,
                                   args=args, kwargs=kwargs, options={},
                                   message_id=_message_id)
    return enqueue_message_on_commit(actor, message, delay_ms=_delay_ms, using=_using)


def enqueue_message_on_commit(
    actor: dramatiq.Actor, message: dramatiq.Message, *, delay_ms: int | None = None,
    using: str = "default",
) -> str:
    """Send an already built ``message`` of ``actor`` once the transaction commits.

    For callers that need message options (``actor.message_with_options(...)``), such as
    the scheduler's ``schedule_id`` or a failed job's retry. Returns the message id.
    """
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        _outbox(connection, actor.broker).items.append((message, delay_ms))
    else:  # autocommit: at once (Django refuses outside autocommit without atomic)
        transaction.on_commit(
            lambda: actor.broker.enqueue(message, delay=delay_ms), using=using, robust=False
        )
    return message.message_id


class _Outbox:
    """The messages one transaction (at one savepoint depth) enqueues for one broker."""

    def __init__(self, broker: dramatiq.Broker) -> None:
        self.broker = broker
        self.items: list[tuple[dramatiq.Message, int | None]] = []
        self.callback: tuple | None = None  # its entry in the connection's commit callbacks

    def send(self) -> None:
        items, self.items = self.items, []
        if items:
            self.broker.enqueue_many(items)


# Per thread (as Django's connections are): alias → {(savepoint ids, broker id): outbox}.
_open = threading.local()


def _outbox(connection, broker: dramatiq.Broker) -> _Outbox:
    outboxes: dict[tuple, _Outbox] = _open.__dict__.setdefault(connection.alias, {})
    key = (tuple(connection.savepoint_ids), id(broker))
    outbox = outboxes.get(key)
    if outbox is None or not _registered(connection, outbox):
        # Drop outboxes whose transaction or savepoint ended (committed: sent; rolled
        # back: Django dropped their callback, and with it their messages).
        for stale in [k for k, o in outboxes.items() if not _registered(connection, o)]:
            del outboxes[stale]
        outbox = outboxes[key] = _Outbox(broker)
        connection.on_commit(outbox.send, robust=False)
        # Django keeps (savepoint ids, callback, robust) entries in run_on_commit until the
        # commit runs them, and removes those of a rolled-back savepoint: while this entry
        # is there, the outbox still belongs to the open transaction.
        outbox.callback = connection.run_on_commit[-1]
    return outbox


def _registered(connection, outbox: _Outbox) -> bool:
    return any(entry is outbox.callback for entry in connection.run_on_commit)
