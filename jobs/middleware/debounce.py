"""Dramatiq middleware: a debounced run releases its claim as it starts (``jobs.debounce``)."""

import dramatiq
from dramatiq.middleware import Middleware

from jobs.debounce import debounce_release


class DebounceRelease(Middleware):
    """For messages carrying option ``debounce_key``: delete the key before the actor runs.

    After the database gate (a run held during an outage keeps its claim, so nothing new
    is queued behind it) and before the actor: every change committed before the delete
    is read by this run; every change after it claims a new one.
    """

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.Message) -> None:
        debounce_release(message)
