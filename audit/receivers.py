"""Receivers that turn other apps' announcements into audit entries."""

from typing import Any

from django.db import models

from audit.services import audit_log_record


def on_operator_action(sender, *, action: str, resource: models.Model, actor: Any = None,
                       metadata: dict[str, Any] | None = None, **kwargs) -> None:
    """``jobs.signals.operator_action``: staff retried a failed job, ran a schedule, ..."""
    audit_log_record(action=action, resource=resource, actor=actor, metadata=metadata)
