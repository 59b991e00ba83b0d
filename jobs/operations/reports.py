"""Storing and emailing an operations report: once per run, whatever the retries.

A run is named by :attr:`jobs.middleware.attempts.CurrentAttempt.run_key` (the schedule's
tick, or the message of a manual run), which every attempt of the run shares. The first
attempt that gets as far as storing the report stores it; a retry (after the email
failed, say) finds it and only emails it, once (``jobs.alerts.email_staff_once``: claimed
before it is sent, released again if sending fails).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.alerts import email_staff_once
from jobs.middleware.attempts import current_attempt
from jobs.models import OperationsReport, ReportKind


@dataclass
class ReportDraft:
    findings: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None


def operations_report_for_run(*, kind: ReportKind, build: Callable[[], ReportDraft]
                              ) -> OperationsReport:
    """The report of the running job's run: the one an earlier attempt stored, or a new
    one made by ``build()``. Outside a worker every call stores a new report."""
    attempt = current_attempt()
    run_key = attempt.run_key if attempt is not None else ""
    if run_key:
        stored = OperationsReport.objects.filter(kind=kind, run_key=run_key).first()
        if stored is not None:
            return stored
    draft = build()
    values = {"findings": draft.findings, "summary": draft.summary,
              "period_start": draft.period_start, "period_end": draft.period_end}
    if not run_key:
        return OperationsReport.objects.create(kind=kind, **values)
    try:
        with transaction.atomic():
            return OperationsReport.objects.create(kind=kind, run_key=run_key, **values)
    except IntegrityError:  # a concurrent delivery of the same run stored it first
        return OperationsReport.objects.get(kind=kind, run_key=run_key)


def operations_report_email(report: OperationsReport, *, subject: str, body: str
                            ) -> OperationsReport:
    """Email ``report`` to staff unless it already went out (``email_staff_once``, keyed
    by the report). Raises what sending raises (the report is then left unsent, for the
    next attempt)."""
    emailed_to = email_staff_once(key=f"operations-report:{report.pk}", subject=subject,
                                  body=body)
    if emailed_to is not None:
        OperationsReport.objects.filter(pk=report.pk).update(emailed_at=timezone.now(),
                                                             emailed_to=emailed_to)
    report.refresh_from_db(fields=["emailed_at", "emailed_to"])
    return report
