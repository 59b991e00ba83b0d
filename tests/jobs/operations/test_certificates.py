"""Certificate expiry check against a local TLS server serving certificates the test makes
(trustme CA)."""

import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta

import pytest
import trustme
from django.core import mail

from jobs.models import ReportKind
from jobs.operations.certificates import certificate_check_run, parse_host


class TlsServer:
    """Completes TLS handshakes on 127.0.0.1 with the given certificate, then hangs up."""

    def __init__(self, cert: trustme.LeafCert):
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(self.context)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            try:
                conn.settimeout(5)
                with self.context.wrap_socket(conn, server_side=True):
                    pass
            except (ssl.SSLError, OSError):
                pass  # the client refused our certificate: that is what some tests check

    def close(self):
        self._stop.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture
def ca():
    return trustme.CA()


@pytest.fixture
def serve(ca):
    servers = []

    def start(days_valid: float, *, issuer: trustme.CA | None = None) -> str:
        now = datetime.now(UTC)
        cert = (issuer or ca).issue_cert("localhost", not_before=now - timedelta(days=30),
                                         not_after=now + timedelta(days=days_valid))
        server = TlsServer(cert)
        servers.append(server)
        return f"localhost:{server.port}"

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def cert_settings(settings, ca, tmp_path):
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings.CERT_CHECK_CA_FILE = str(ca_file)
    settings.CERT_CHECK_WARN_DAYS = 30
    settings.CERT_CHECK_TIMEOUT_SECONDS = 5
    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    return settings


def test_parse_host():
    assert parse_host("jobsite.ca") == ("jobsite.ca", 443)
    assert parse_host(" api.jobsite.ca:8443 ") == ("api.jobsite.ca", 8443)
    assert parse_host("[::1]:443") == ("::1", 443)


@pytest.mark.django_db
def test_certificate_under_30_days_is_an_alert(cert_settings, serve):
    soon = serve(days_valid=12)
    fine = serve(days_valid=200)
    cert_settings.CERT_CHECK_HOSTS = [soon, fine]

    report = certificate_check_run()

    assert report.kind == ReportKind.CERTIFICATE_CHECK
    codes = {(f["host"], f["port"]): f["code"] for f in report.findings}
    assert codes == {parse_host(soon): "certificate_expiring",
                     parse_host(fine): "certificate_ok"}
    expiring = next(f for f in report.findings if f["code"] == "certificate_expiring")
    assert expiring["severity"] == "medium"
    assert 11 < expiring["detail"]["days_left"] <= 12
    assert expiring["detail"]["verified"] is True
    assert len(mail.outbox) == 1
    assert f"{soon}: certificate expires in 12 day(s)" in mail.outbox[0].body
    assert fine not in mail.outbox[0].body
    assert report.emailed_to == 1


@pytest.mark.django_db
def test_valid_certificates_send_no_email(cert_settings, serve):
    cert_settings.CERT_CHECK_HOSTS = [serve(days_valid=90)]

    report = certificate_check_run()

    assert [f["code"] for f in report.findings] == ["certificate_ok"]
    assert report.summary == "All 1 certificate(s) valid for 30+ days."
    assert mail.outbox == []


@pytest.mark.django_db
def test_expiring_within_a_week_is_high(cert_settings, serve):
    cert_settings.CERT_CHECK_HOSTS = [serve(days_valid=3)]

    (finding,) = certificate_check_run().findings

    assert (finding["code"], finding["severity"]) == ("certificate_expiring", "high")


@pytest.mark.django_db
def test_expired_certificate_is_reported_with_its_date(cert_settings, serve):
    cert_settings.CERT_CHECK_HOSTS = [serve(days_valid=-2)]

    (finding,) = certificate_check_run().findings

    assert (finding["code"], finding["severity"]) == ("certificate_expired", "high")
    assert -3 < finding["detail"]["days_left"] < -1
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_untrusted_certificate_is_reported(cert_settings, serve):
    cert_settings.CERT_CHECK_HOSTS = [serve(days_valid=90, issuer=trustme.CA())]

    (finding,) = certificate_check_run().findings

    assert finding["code"] == "certificate_unverified"
    assert "unable to get local issuer certificate" in finding["detail"]["verify_error"]


@pytest.mark.django_db
def test_unreachable_host_is_reported(cert_settings):
    probe = socket.create_server(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    cert_settings.CERT_CHECK_HOSTS = [f"127.0.0.1:{port}"]

    (finding,) = certificate_check_run().findings

    assert (finding["code"], finding["severity"]) == ("certificate_unreachable", "high")
    assert "ConnectionRefusedError" in finding["detail"]["error"]
