"""Storing and emailing a report: once per run, whatever the retries.

A run is named by :attr:`jobs.middleware.attempts.CurrentAttempt.run_key` (the schedule's
tick, or the message of a manual run), which every attempt of the run shares. The first
attempt that gets as far as storing the report stores it; a retry (after the email
failed, say) finds it and only emails it, once (``jobs.alerts.email_staff_once``, keyed by
the report: claimed before it is sent, released again if sending fails).

:func:`run_report_for_run` and :func:`run_report_email` serve any
:class:`jobs.models.RunReport` (the operations reports here, the monthly statistics report
of ``analytics``); :func:`operations_report_for_run` and :func:`operations_report_email`
are the operations jobs' use of them.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, transaction
from django.utils import timezone

from jobs.alerts import Attachment, email_staff_once
from jobs.middleware.attempts import current_attempt
from jobs.models import OperationsReport, ReportKind, RunReport

R = TypeVar("R", bound=RunReport)


def run_report_for_run(model: type[R], *, build: Callable[[], dict[str, Any]],
                       **key: Any) -> R:
    """The ``model`` report of the running job's run: the one an earlier attempt stored
    under ``key`` (the fields that, with the run key, name it: ``kind=…``), or a new one
    with the field values ``build()`` returns. Outside a worker every call stores a new
    report."""
    attempt = current_attempt()
    run_key = attempt.run_key if attempt is not None else ""
    if run_key:
        stored = model.objects.filter(run_key=run_key, **key).first()
        if stored is not None:
            return stored
    values = build()
    if not run_key:
        return model.objects.create(**key, **values)
    try:
        with transaction.atomic():
            return model.objects.create(run_key=run_key, **key, **values)
    except IntegrityError:  # a concurrent delivery of the same run stored it first
        return model.objects.get(run_key=run_key, **key)


def run_report_email(report: R, *, subject: str, body: str,
                     attachments: Sequence[Attachment] = ()) -> R:
    """Email ``report`` to staff unless it already went out. Raises what sending raises
    (the report is then left unsent, for the next attempt)."""
    model = type(report)
    emailed_to = email_staff_once(key=f"{model._meta.label_lower}:{report.pk}",
                                  subject=subject, body=body, attachments=attachments)
    if emailed_to is not None:
        model.objects.filter(pk=report.pk).update(emailed_at=timezone.now(),
                                                  emailed_to=emailed_to)
    report.refresh_from_db(fields=["emailed_at", "emailed_to"])
    return report


@dataclass
class ReportDraft:
    findings: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    period_start: datetime | None = None
    period_end: datetime | None = None


def operations_report_for_run(*, kind: ReportKind, build: Callable[[], ReportDraft]
                              ) -> OperationsReport:
    """The operations report of the running job's run (:func:`run_report_for_run`)."""

    def values() -> dict[str, Any]:
        draft = build()
        return {"findings": draft.findings, "summary": draft.summary,
                "period_start": draft.period_start, "period_end": draft.period_end}

    return run_report_for_run(OperationsReport, build=values, kind=kind)


def operations_report_email(report: OperationsReport, *, subject: str, body: str
                            ) -> OperationsReport:
    """Email ``report`` to staff unless it already went out (:func:`run_report_email`)."""
    return run_report_email(report, subject=subject, body=body)
