"""Writes to the audit trail."""

from typing import Any

from django.db import models

from audit.models import AuditLog


def resource_type_of(resource: models.Model | type[models.Model]) -> str:
    """The one ``resource_type`` vocabulary: the model's ``app_label.model_name``."""
    return resource._meta.label_lower


def audit_log_record(
    *, action: str, resource: models.Model | type[models.Model],
    resource_id: str | int | None = None, actor: Any = None,
    metadata: dict[str, Any] | None = None, is_critical: bool = False,
) -> AuditLog:
    """Append one audit entry about ``resource``.

    ``resource`` is a model instance, or a model class when the entry concerns no single
    saved row (a failed login names no user); ``resource_id`` overrides the instance's pk.
    ``metadata`` holds ids and counts, never personal data.
    """
    if resource_id is None:
        resource_id = "" if isinstance(resource, type) else resource.pk
    return AuditLog.objects.create(
        action=action, resource_type=resource_type_of(resource),
        resource_id="" if resource_id is None else str(resource_id), actor=actor,
        metadata=metadata or {}, is_critical=is_critical,
    )
