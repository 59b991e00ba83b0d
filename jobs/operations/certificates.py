"""Certificate expiry check (seed 12.8.4): TLS certificates of ``CERT_CHECK_HOSTS``.

Each host is checked twice: once with verification (default trust store plus
``CERT_CHECK_CA_FILE``) to catch an untrusted or mismatched certificate, once without to
read the expiry date even when the certificate is already expired. Staff get one email
when any host has a problem; every run is stored.
"""

import logging
import socket
import ssl
from datetime import UTC, datetime
from typing import Any

from cryptography import x509
from django.conf import settings

from jobs.models import OperationsReport, ReportKind
from jobs.operations.reports import (
    ReportDraft,
    operations_report_email,
    operations_report_for_run,
)

logger = logging.getLogger(__name__)


def parse_host(entry: str) -> tuple[str, int]:
    """``"example.com:8443"`` → ``("example.com", 8443)``; the port defaults to 443."""
    host, sep, port = entry.strip().rpartition(":")
    if not sep:
        return entry.strip(), 443
    return host.strip("[]"), int(port)


def _peer_certificate(host: str, port: int, context: ssl.SSLContext, timeout: float) -> bytes:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True)


def certificate_status(host: str, port: int, *, ca_file: str = "", timeout: float = 10,
                       now: datetime | None = None) -> dict[str, Any]:
    """Expiry and verification of the certificate ``host:port`` serves."""
    now = now or datetime.now(UTC)
    status: dict[str, Any] = {"host": host, "port": port}
    unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    unverified.check_hostname = False
    unverified.verify_mode = ssl.CERT_NONE
    try:
        der = _peer_certificate(host, port, unverified, timeout)
    except (OSError, ssl.SSLError) as exc:
        status["error"] = f"{type(exc).__name__}: {exc}"[:300]
        return status
    not_after = x509.load_der_x509_certificate(der).not_valid_after_utc
    status["not_after"] = not_after.isoformat()
    status["days_left"] = (not_after - now).total_seconds() / 86400
    verified = ssl.create_default_context()
    if ca_file:
        verified.load_verify_locations(cafile=ca_file)
    try:
        _peer_certificate(host, port, verified, timeout)
        status["verified"] = True
    except ssl.SSLCertVerificationError as exc:
        status["verified"] = False
        status["verify_error"] = exc.verify_message or str(exc)
    except (OSError, ssl.SSLError) as exc:
        status["verified"] = False
        status["verify_error"] = f"{type(exc).__name__}: {exc}"[:300]
    return status


def certificate_findings(statuses: list[dict[str, Any]], *, warn_days: int
                         ) -> list[dict[str, Any]]:
    findings = []
    for s in statuses:
        where = f"{s['host']}:{s['port']}"
        detail = {k: v for k, v in s.items() if k not in ("host", "port")}
        base = {"host": s["host"], "port": s["port"], "detail": detail}
        if "error" in s:
            findings.append({**base, "code": "certificate_unreachable", "severity": "high",
                             "summary": f"{where}: could not read its certificate ({s['error']})."})
            continue
        days = s["days_left"]
        if days < 0:
            findings.append({**base, "code": "certificate_expired", "severity": "high",
                             "summary": f"{where}: certificate expired {-days:.0f} day(s) ago "
                                        f"({s['not_after']})."})
        elif days < warn_days:
            findings.append({**base, "code": "certificate_expiring",
                             "severity": "high" if days < 7 else "medium",
                             "summary": f"{where}: certificate expires in {days:.0f} day(s) "
                                        f"({s['not_after']}), under {warn_days}."})
        if not s.get("verified") and days >= 0:
            findings.append({**base, "code": "certificate_unverified", "severity": "high",
                             "summary": f"{where}: certificate does not verify "
                                        f"({s.get('verify_error', '')})."})
        if days >= warn_days and s.get("verified"):
            findings.append({**base, "code": "certificate_ok", "severity": "info",
                             "summary": f"{where}: valid for {days:.0f} more day(s)."})
    return findings


def _draft() -> ReportDraft:
    warn_days = settings.CERT_CHECK_WARN_DAYS
    statuses = [certificate_status(*parse_host(entry), ca_file=settings.CERT_CHECK_CA_FILE,
                                   timeout=settings.CERT_CHECK_TIMEOUT_SECONDS)
                for entry in settings.CERT_CHECK_HOSTS if entry.strip()]
    findings = certificate_findings(statuses, warn_days=warn_days)
    problems = [f for f in findings if f["severity"] != "info"]
    summary = (f"{len(problems)} certificate problem(s) on {len(statuses)} host(s)."
               if problems else f"All {len(statuses)} certificate(s) valid for "
                                f"{warn_days}+ days.")
    return ReportDraft(findings=findings, summary=summary)


def certificate_check_run() -> OperationsReport:
    """Check every configured host, store the results (once per run), alert staff about
    problems."""
    report = operations_report_for_run(kind=ReportKind.CERTIFICATE_CHECK, build=_draft)
    problems = [f for f in report.findings if f["severity"] != "info"]
    if problems:
        body = "\n".join([report.summary, ""]
                         + [f"[{f['severity'].upper()}] {f['summary']}" for f in problems]
                         + ["", f"Stored as operations report #{report.pk}."])
        report = operations_report_email(report, subject=f"Certificates: {report.summary}",
                                         body=body)
    logger.info("certificate check", extra={"report_id": report.pk,
                                            "problems": len(problems)})
    return report
