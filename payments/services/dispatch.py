"""The ``{event type: handler}`` table. A handler takes the event (the parsed JSON Stripe
signed) and the stored row, runs inside the transaction that marks the event processed
(holding its row lock, so one event is never handled by two workers at once), and must be
idempotent under concurrency on its own: lock the rows it changes, move state forward
only. Its side effects (emails, receipts) are enqueued on commit."""

from collections.abc import Callable
from typing import Any

Handler = Callable[[dict[str, Any], Any], None]

HANDLERS: dict[str, Handler] = {}


def handles(*event_types: str) -> Callable[[Handler], Handler]:
    """Register the decorated function for ``event_types`` (each type has one handler)."""
    def register(handler: Handler) -> Handler:
        for event_type in event_types:
            if event_type in HANDLERS and HANDLERS[event_type] is not handler:
                raise ValueError(f"{event_type} already has a handler")
            HANDLERS[event_type] = handler
        return handler
    return register


#: The modules whose handlers register themselves with :func:`handles`.
HANDLER_MODULES = ("payments.services.intents", "payments.services.disputes",
                   "payments.services.subscriptions")


def _load() -> None:
    from importlib import import_module

    for module in HANDLER_MODULES:
        import_module(module)


def handler_for(event_type: str) -> Handler | None:
    _load()
    return HANDLERS.get(event_type)


def handled_types() -> list[str]:
    _load()
    return sorted(HANDLERS)
