"""Security audit on prepared data: correct findings, stored, emailed, no personal data."""

import json
import subprocess
import time
from datetime import timedelta

import pytest
import redis
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from jobs.models import OperationsReport, ReportKind
from jobs.operations.security_audit import security_audit_run
from marketplace.models import User
from marketplace.security import LOGIN_FAILED_ACTION, login_identifier_hash


@pytest.fixture
def audit_settings(settings):
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    settings.SECURITY_AUDIT_STAFF_INACTIVE_DAYS = 90
    settings.SECURITY_AUDIT_MAX_SUPERUSERS = 1
    settings.SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD = 6
    settings.SECURITY_AUDIT_FAILED_LOGIN_PER_ACCOUNT = 4
    settings.SECURITY_AUDIT_FAILED_LOGIN_WINDOW_HOURS = 24
    return settings


def by_code(report: OperationsReport) -> dict:
    return {f["code"]: f for f in report.findings}


def fail_login(client, email: str) -> None:
    response = client.post(reverse("admin:login"), {"username": email, "password": "wrong"})
    assert response.status_code == 200  # the login form again, with an error


@pytest.mark.django_db
def test_failed_logins_are_audited_with_a_hashed_identifier(client):
    fail_login(client, "victim@example.test")

    entry = AuditLog.objects.get(action=LOGIN_FAILED_ACTION)
    assert entry.metadata == {"identifier_hash": login_identifier_hash("victim@example.test")}
    assert "victim" not in json.dumps(entry.metadata)


@pytest.mark.django_db
def test_audit_finds_stale_staff_superusers_login_spikes_and_configuration(
        audit_settings, client):
    now = timezone.now()
    stale = User.objects.create_user("stale@example.test", "pw-1234567", is_staff=True,
                                     last_login=now - timedelta(days=200))
    never = User.objects.create_user("never@example.test", "pw-1234567", is_staff=True)
    recent = User.objects.create_superuser("boss@example.test", "pw-1234567",
                                           last_login=now - timedelta(days=1))
    second_super = User.objects.create_superuser("boss2@example.test", "pw-1234567",
                                                 last_login=now - timedelta(days=2))
    User.objects.create_user("gone@example.test", "pw-1234567", is_staff=True,
                             is_active=False)  # inactive: not reported
    for _ in range(4):
        fail_login(client, "target@example.test")
    for n in range(3):
        fail_login(client, f"spray{n}@example.test")
    old = AuditLog.objects.create(action=LOGIN_FAILED_ACTION, resource_type="auth",
                                  metadata={"identifier_hash": "x"})
    AuditLog.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=3))
    audit_settings.DEBUG = True

    report = security_audit_run()

    findings = by_code(report)
    assert report.kind == ReportKind.SECURITY_AUDIT
    assert findings["staff_without_recent_login"]["detail"]["user_ids"] == [stale.pk, never.pk]
    assert findings["superusers"]["detail"]["user_ids"] == [recent.pk, second_super.pk]
    assert findings["superusers"]["severity"] == "medium"  # 2 > the limit of 1
    assert findings["failed_login_spike"]["detail"]["count"] == 7  # the 3-day-old one is out
    assert findings["failed_login_targeted_account"]["detail"]["identifier_hashes"] == {
        login_identifier_hash("target@example.test"): 4}
    assert findings["debug_on"]["severity"] == "high"
    assert findings["redis_without_password"]["severity"] == "high"  # the test Redis has none
    assert findings["job_payload_encryption_off"]["severity"] == "medium"
    assert report.findings[0]["severity"] == "high"  # most severe first
    # Stored and emailed, without personal data.
    assert OperationsReport.objects.get(pk=report.pk).findings == report.findings
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["ops@jobsite.test"]
    assert "[HIGH] failed_login_spike" in mail.outbox[0].body
    stored = json.dumps(report.findings) + mail.outbox[0].body + mail.outbox[0].subject
    assert "@example.test" not in stored


@pytest.mark.django_db
def test_quiet_system_has_no_login_or_staff_findings(audit_settings):
    User.objects.create_superuser("boss@example.test", "pw-1234567",
                                  last_login=timezone.now() - timedelta(days=1))
    audit_settings.DEBUG = False
    audit_settings.JOB_PAYLOAD_KEYS = ["key"]

    findings = by_code(security_audit_run())

    assert "staff_without_recent_login" not in findings
    assert "failed_login_spike" not in findings
    assert "failed_login_targeted_account" not in findings
    assert "debug_on" not in findings
    assert "job_payload_encryption_off" not in findings
    assert findings["superusers"]["severity"] == "info"


@pytest.fixture
def redis_with_password(tmp_path):
    """A second Redis server that requires a password (port from this suite's range)."""
    port = 16551
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--requirepass",
         "s3cret-test", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host="127.0.0.1", port=port, password="s3cret-test")
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("the password-protected Redis did not start")
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)


@pytest.mark.django_db
def test_redis_with_a_password_is_not_reported(audit_settings, redis_with_password):
    audit_settings.REDIS_OPTIONS = {**audit_settings.REDIS_OPTIONS, "port": redis_with_password,
                                    "password": "s3cret-test"}

    findings = by_code(security_audit_run())

    assert "redis_without_password" not in findings
    assert "redis_unreachable" not in findings


@pytest.mark.django_db
def test_unreachable_redis_is_reported(audit_settings):
    audit_settings.REDIS_OPTIONS = {**audit_settings.REDIS_OPTIONS, "port": 16552}

    findings = by_code(security_audit_run())

    assert "redis_without_password" not in findings
    assert findings["redis_unreachable"]["severity"] == "medium"
