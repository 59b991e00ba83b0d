"""Failed logins: audited as they happen, reported by the weekly security audit.

Django's ``user_login_failed`` signal (connected in ``MarketplaceConfig.ready``) records
each failure as ``auth.login_failed`` with a keyed hash of the identifier typed, never
the identifier. The security audit (``jobs.operations.security_audit``) asks this module
for spikes overall and per account identifier.
"""

import hashlib
import hmac
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from audit.models import AuditLog
from audit.services import audit_log_record
from jobs.operations.security_audit import finding
from marketplace.models import User

LOGIN_FAILED_ACTION = "auth.login_failed"


def login_identifier_hash(identifier: str) -> str:
    """A keyed, truncated hash: counts repeated failures per account without storing it."""
    digest = hmac.new(settings.SECRET_KEY.encode(), identifier.strip().lower().encode(),
                      hashlib.sha256)
    return digest.hexdigest()[:16]


def login_failure_record(*, identifier: str) -> AuditLog:
    return audit_log_record(action=LOGIN_FAILED_ACTION, resource=User,
                            metadata={"identifier_hash": login_identifier_hash(identifier)})


def on_user_login_failed(sender, credentials: dict[str, Any], request=None, **kwargs) -> None:
    """Receiver of ``user_login_failed``; Django has already masked the password."""
    identifier = str(credentials.get(User.USERNAME_FIELD) or credentials.get("username") or "")
    login_failure_record(identifier=identifier)


def failed_login_findings(now: datetime) -> list[dict[str, Any]]:
    """Security-audit findings: a spike of failed logins, and identifiers tried often."""
    hours = settings.SECURITY_AUDIT_FAILED_LOGIN_WINDOW_HOURS
    rows = AuditLog.objects.filter(action=LOGIN_FAILED_ACTION,
                                   created_at__gte=now - timedelta(hours=hours))
    hashes = Counter(metadata.get("identifier_hash", "")
                     for metadata in rows.values_list("metadata", flat=True))
    total = sum(hashes.values())
    findings = []
    if total >= settings.SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD:
        findings.append(finding(
            "failed_login_spike", "high",
            f"{total} failed logins in the last {hours} h (threshold "
            f"{settings.SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD}).",
            count=total, hours=hours))
    per_account = settings.SECURITY_AUDIT_FAILED_LOGIN_PER_ACCOUNT
    targeted = {h: n for h, n in hashes.most_common() if h and n >= per_account}
    if targeted:
        findings.append(finding(
            "failed_login_targeted_account", "high",
            f"{len(targeted)} account identifier(s) with at least {per_account} failed "
            f"logins in {hours} h (possible credential stuffing).",
            identifier_hashes=targeted, hours=hours))
    return findings
