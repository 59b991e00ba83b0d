"""What the operations jobs (security audit, certificate check, performance report) found."""

from django.db import models
from django.utils import timezone


class ReportKind(models.TextChoices):
    SECURITY_AUDIT = "security_audit", "Security audit"
    CERTIFICATE_CHECK = "certificate_check", "Certificate expiry check"
    PERFORMANCE_REPORT = "performance_report", "Performance report"


class RunReport(models.Model):
    """A report a scheduled job stores and emails to staff once per run
    (``jobs.operations.reports``): operations reports here, the monthly statistics report
    in ``analytics``.

    ``run_key`` names the run (a schedule's tick, or the message of a manual run): the
    attempts of one run share it, so a retried run stores one report, not one per attempt,
    and emails it until ``emailed_at`` says it went out. A concrete model makes
    ``run_key`` unique together with whatever else names its reports (a ``kind``), for
    non-empty keys.
    """

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    emailed_to = models.PositiveIntegerField(default=0)
    emailed_at = models.DateTimeField(null=True, blank=True)
    run_key = models.CharField(max_length=120, blank=True, editable=False)

    class Meta:
        abstract = True


class OperationsReport(RunReport):
    """What one run of an operations job found; ``findings`` holds codes, ids and counts."""

    kind = models.CharField(max_length=30, choices=ReportKind.choices, db_index=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    findings = models.JSONField(default=list, blank=True)
    summary = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "run_key"], condition=~models.Q(run_key=""),
                                    name="operationsreport_one_per_run"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk}"

    @property
    def finding_count(self) -> int:
        return len(self.findings)
