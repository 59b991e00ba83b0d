"""Security audit (seed 12.8.3): what an operator checks weekly, stored and emailed to staff.

The platform's own checks (staff accounts, superusers, Redis without a password, DEBUG,
clear-text job payloads, ``ALLOWED_HOSTS``, Django's deployment checks) run with those
other apps register (:func:`security_finding_source`; the marketplace adds failed-login
spikes from the audit trail). Findings carry codes, user ids, counts and hashed
identifiers only — never addresses.
"""

import logging
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.db.models import Q
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs.models import OperationsReport, ReportKind
from jobs.operations.reports import (
    ReportDraft,
    operations_report_email,
    operations_report_for_run,
)

logger = logging.getLogger(__name__)

SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}

# Checks other apps add: each takes the audit's time and returns findings. The platform
# knows no user or audit-trail model; the apps owning them register what to look for.
FindingSource = Callable[[datetime], list[dict[str, Any]]]
_SOURCES: list[FindingSource] = []


def security_finding_source(source: FindingSource) -> FindingSource:
    """Register ``source`` (a decorator): its findings join every security audit.

    An app registers its sources when it is ready (``AppConfig.ready``); registering the
    same function twice adds it once.
    """
    if source not in _SOURCES:
        _SOURCES.append(source)
    return source


def finding(code: str, severity: str, summary: str, **detail: Any) -> dict[str, Any]:
    """One finding: a stable ``code``, a severity of :data:`SEVERITY_ORDER`, a sentence,
    and details (ids, counts, hashes — never addresses)."""
    if severity not in SEVERITY_ORDER:
        raise ValueError(f"unknown severity {severity!r}")
    return {"code": code, "severity": severity, "summary": summary, "detail": detail}


def _staff_findings(now) -> list[dict[str, Any]]:
    users = get_user_model().objects.filter(is_active=True)
    findings = []
    stale_days = settings.SECURITY_AUDIT_STAFF_INACTIVE_DAYS
    cutoff = now - timedelta(days=stale_days)
    stale = list(users.filter(is_staff=True)
                 .filter(Q(last_login__isnull=True) | Q(last_login__lt=cutoff))
                 .order_by("pk").values_list("pk", flat=True))
    if stale:
        findings.append(finding(
            "staff_without_recent_login", "medium",
            f"{len(stale)} active staff account(s) without a login in {stale_days} days: "
            "deactivate or confirm them.", user_ids=stale, days=stale_days))
    superusers = list(users.filter(is_superuser=True).order_by("pk")
                      .values_list("pk", flat=True))
    limit = settings.SECURITY_AUDIT_MAX_SUPERUSERS
    findings.append(finding(
        "superusers", "medium" if len(superusers) > limit else "info",
        f"{len(superusers)} active superuser(s)"
        + (f", more than the {limit} expected" if len(superusers) > limit else ""),
        user_ids=superusers, limit=limit))
    return findings


def redis_accepts_anonymous() -> bool:
    """Whether the configured Redis answers a client that presents no password."""
    options = {k: v for k, v in settings.REDIS_OPTIONS.items()
               if k not in ("password", "username")}
    # One attempt: redis-py's default retries turn an auth refusal into seconds of backoff.
    client = redis.Redis(**{**options, "socket_timeout": 3, "socket_connect_timeout": 3,
                            "retry": Retry(NoBackoff(), 0)})
    try:
        return bool(client.ping())
    except redis.AuthenticationError:
        return False
    except redis.ResponseError as exc:  # "NOAUTH Authentication required."
        return "NOAUTH" not in str(exc)
    finally:
        client.close()


def _configuration_findings() -> list[dict[str, Any]]:
    findings = []
    if settings.DEBUG:
        findings.append(finding("debug_on", "high",
                                 "DEBUG is on: tracebacks and settings leak to visitors."))
    try:
        if redis_accepts_anonymous():
            findings.append(finding("redis_without_password", "high",
                                     "Redis accepts connections without a password."))
    except redis.RedisError as exc:
        findings.append(finding("redis_unreachable", "medium",
                                 f"Redis could not be checked: {type(exc).__name__}."))
    if not settings.JOB_PAYLOAD_KEYS:
        findings.append(finding("job_payload_encryption_off", "medium",
                                 "JOB_PAYLOAD_KEYS is empty: job payloads are stored in "
                                 "clear text in Redis."))
    if "*" in settings.ALLOWED_HOSTS:
        findings.append(finding("allowed_hosts_wildcard", "medium",
                                 "ALLOWED_HOSTS contains '*'."))
    # Django's own deployment checks: HSTS, secure cookies, SECRET_KEY strength, ...
    for message in checks.run_checks(include_deployment_checks=True,
                                     tags=[checks.Tags.security]):
        if message.level >= checks.WARNING:
            findings.append(finding(f"django_{message.id}", "medium",
                                     str(message.msg).split("\n")[0][:300], check=message.id))
    return findings


def security_audit_findings() -> list[dict[str, Any]]:
    """Every check's findings, most severe first."""
    now = timezone.now()
    findings = _staff_findings(now) + _configuration_findings()
    for source in _SOURCES:
        findings += source(now)
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f["severity"]], f["code"]))


def _draft() -> ReportDraft:
    findings = security_audit_findings()
    counts = Counter(f["severity"] for f in findings)
    summary = (f"{len(findings)} finding(s): " + ", ".join(
        f"{counts[s]} {s}" for s in SEVERITY_ORDER if counts[s])) if findings else "No findings."
    return ReportDraft(findings=findings, summary=summary)


def security_audit_run() -> OperationsReport:
    """Run the audit, store its findings (once per run), email them to staff."""
    report = operations_report_for_run(kind=ReportKind.SECURITY_AUDIT, build=_draft)
    lines = [report.summary, ""] + [f"[{f['severity'].upper()}] {f['code']}: {f['summary']}"
                                    for f in report.findings]
    lines += ["", f"Stored as operations report #{report.pk}."]
    report = operations_report_email(report, subject=f"Security audit: {report.summary}",
                                     body="\n".join(lines))
    logger.info("security audit", extra={"report_id": report.pk,
                                         "findings": len(report.findings)})
    return report
