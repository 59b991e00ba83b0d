"""Signals the platform sends. ``jobs`` imports no app above it; apps listen instead."""

from django.dispatch import Signal

#: Sent when staff act on the platform through a jobs service: a failed job retried or
#: discarded, a schedule created, edited or run now. The ``audit`` app records each one.
#: Keyword arguments: ``action`` (e.g. ``"failed_job.retried"``), ``resource`` (the model
#: instance acted on), ``actor`` (the user, or ``None``), ``metadata`` (ids and counts,
#: never personal data). Receivers run inside the service's transaction.
operator_action = Signal()
