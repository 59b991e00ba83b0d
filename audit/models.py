"""The audit trail: what happened to which record, by whom. Append-only.

Every app writes it through :func:`audit.services.audit_log_record`; the retention policy
cleans it. ``resource_type`` is always the model's ``_meta.label_lower``
(``marketplace.user``, ``jobs.failedjob``), so entries of every app read the same way.
"""

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditLog(models.Model):
    """One audited action. ``metadata`` holds ids and counts, never personal data."""

    action = models.CharField(max_length=100, db_index=True)
    resource_type = models.CharField(
        max_length=100, help_text="The model's app_label.model_name, e.g. marketplace.user.")
    resource_id = models.CharField(max_length=100, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="audit_entries",
    )
    metadata = models.JSONField(default=dict, blank=True)
    is_critical = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type}#{self.resource_id}"
