"""Security audit (seed 12.8.3): what an operator checks weekly, stored and emailed to staff.

Findings carry codes, user ids, counts and hashed identifiers only — never addresses.
Failed logins reach the audit log through Django's ``user_login_failed`` signal (connected
in ``JobsConfig.ready``), as ``auth.login_failed`` with a keyed hash of the identifier.
"""

import hashlib
import hmac
import logging
from collections import Counter
from datetime import timedelta
from typing import Any

import redis
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.db.models import Q
from django.utils import timezone
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs.alerts import email_staff
from jobs.scheduling.models import OperationsReport, ReportKind

logger = logging.getLogger(__name__)

LOGIN_FAILED_ACTION = "auth.login_failed"
SEVERITY_ORDER = {"high": 0, "medium": 1, "low": 2, "info": 3}


def login_identifier_hash(identifier: str) -> str:
    """A keyed, truncated hash: counts repeated failures per account without storing it."""
    digest = hmac.new(settings.SECRET_KEY.encode(), identifier.strip().lower().encode(),
                      hashlib.sha256)
    return digest.hexdigest()[:16]


def login_failure_record(*, identifier: str) -> None:
    from marketplace.services import audit_log_record

    audit_log_record(action=LOGIN_FAILED_ACTION, resource_type="auth",
                     metadata={"identifier_hash": login_identifier_hash(identifier)})


def on_user_login_failed(sender, credentials: dict[str, Any], request=None, **kwargs) -> None:
    """Receiver of ``user_login_failed``; Django has already masked the password."""
    user_model = get_user_model()
    identifier = str(credentials.get(user_model.USERNAME_FIELD)
                     or credentials.get("username") or "")
    login_failure_record(identifier=identifier)


def _finding(code: str, severity: str, summary: str, **detail: Any) -> dict[str, Any]:
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
        findings.append(_finding(
            "staff_without_recent_login", "medium",
            f"{len(stale)} active staff account(s) without a login in {stale_days} days: "
            "deactivate or confirm them.", user_ids=stale, days=stale_days))
    superusers = list(users.filter(is_superuser=True).order_by("pk")
                      .values_list("pk", flat=True))
    limit = settings.SECURITY_AUDIT_MAX_SUPERUSERS
    findings.append(_finding(
        "superusers", "medium" if len(superusers) > limit else "info",
        f"{len(superusers)} active superuser(s)"
        + (f", more than the {limit} expected" if len(superusers) > limit else ""),
        user_ids=superusers, limit=limit))
    return findings


def _failed_login_findings(now) -> list[dict[str, Any]]:
    from marketplace.models import AuditLog

    hours = settings.SECURITY_AUDIT_FAILED_LOGIN_WINDOW_HOURS
    rows = AuditLog.objects.filter(action=LOGIN_FAILED_ACTION,
                                   created_at__gte=now - timedelta(hours=hours))
    hashes = Counter(metadata.get("identifier_hash", "")
                     for metadata in rows.values_list("metadata", flat=True))
    total = sum(hashes.values())
    findings = []
    if total >= settings.SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD:
        findings.append(_finding(
            "failed_login_spike", "high",
            f"{total} failed logins in the last {hours} h (threshold "
            f"{settings.SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD}).",
            count=total, hours=hours))
    per_account = settings.SECURITY_AUDIT_FAILED_LOGIN_PER_ACCOUNT
    targeted = {h: n for h, n in hashes.most_common() if h and n >= per_account}
    if targeted:
        findings.append(_finding(
            "failed_login_targeted_account", "high",
            f"{len(targeted)} account identifier(s) with at least {per_account} failed "
            f"logins in {hours} h (possible credential stuffing).",
            identifier_hashes=targeted, hours=hours))
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
        findings.append(_finding("debug_on", "high",
                                 "DEBUG is on: tracebacks and settings leak to visitors."))
    try:
        if redis_accepts_anonymous():
            findings.append(_finding("redis_without_password", "high",
                                     "Redis accepts connections without a password."))
    except redis.RedisError as exc:
        findings.append(_finding("redis_unreachable", "medium",
                                 f"Redis could not be checked: {type(exc).__name__}."))
    if not settings.JOB_PAYLOAD_KEYS:
        findings.append(_finding("job_payload_encryption_off", "medium",
                                 "JOB_PAYLOAD_KEYS is empty: job payloads are stored in "
                                 "clear text in Redis."))
    if "*" in settings.ALLOWED_HOSTS:
        findings.append(_finding("allowed_hosts_wildcard", "medium",
                                 "ALLOWED_HOSTS contains '*'."))
    # Django's own deployment checks: HSTS, secure cookies, SECRET_KEY strength, ...
    for message in checks.run_checks(include_deployment_checks=True,
                                     tags=[checks.Tags.security]):
        if message.level >= checks.WARNING:
            findings.append(_finding(f"django_{message.id}", "medium",
                                     str(message.msg).split("\n")[0][:300], check=message.id))
    return findings


def security_audit_findings() -> list[dict[str, Any]]:
    """Every check's findings, most severe first."""
    now = timezone.now()
    findings = _staff_findings(now) + _failed_login_findings(now) + _configuration_findings()
    return sorted(findings, key=lambda f: (SEVERITY_ORDER[f["severity"]], f["code"]))


def security_audit_run() -> OperationsReport:
    """Run the audit, store its findings, email them to staff."""
    findings = security_audit_findings()
    counts = Counter(f["severity"] for f in findings)
    summary = (f"{len(findings)} finding(s): " + ", ".join(
        f"{counts[s]} {s}" for s in SEVERITY_ORDER if counts[s])) if findings else "No findings."
    report = OperationsReport.objects.create(kind=ReportKind.SECURITY_AUDIT, findings=findings,
                                             summary=summary)
    lines = [summary, ""] + [f"[{f['severity'].upper()}] {f['code']}: {f['summary']}"
                             for f in findings]
    lines += ["", f"Stored as operations report #{report.pk}."]
    report.emailed_to = email_staff(subject=f"Security audit: {summary}", body="\n".join(lines))
    report.save(update_fields=["emailed_to"])
    logger.info("security audit", extra={"report_id": report.pk, "findings": len(findings)})
    return report
