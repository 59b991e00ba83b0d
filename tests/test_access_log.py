"""Gunicorn's access log lines (Procfile's logger class) carry no tokens or credentials."""

import datetime
from types import SimpleNamespace

from gunicorn.config import Config

from config.access_log import ScrubbingLogger

VERIFY_TOKEN = "eyJ1Ijo1LCJlIjoiOGYzYyJ9:1tXq9r:abcDEF123ghiJKL456mnoPQR789"
UNSUBSCRIBE_TOKEN = "eyJ1Ijo1LCJuIjowfQ:q7Vb0ZkXy3rT9mWc2LpN8sHd4"
WEBHOOK_USER = "w3bh00kUs3rXyz"


def access_line(path: str, query: str = "", referer: str = "-", auth: str = "") -> str:
    config = Config()
    logger = ScrubbingLogger(config)
    environ = {
        "REMOTE_ADDR": "203.0.113.9", "REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1",
        "RAW_URI": path + (f"?{query}" if query else ""), "PATH_INFO": path,
        "QUERY_STRING": query, "HTTP_REFERER": referer, "HTTP_USER_AGENT": "curl/8",
    }
    if auth:
        environ["HTTP_AUTHORIZATION"] = auth
    response = SimpleNamespace(status="400 Bad Request", sent=387, headers=[])
    atoms = logger.atoms(response, SimpleNamespace(headers=[]), environ,
                         datetime.timedelta(microseconds=1500))
    return config.access_log_format % atoms


def test_the_verification_token_in_the_query_string_is_not_written():
    line = access_line("/account/verify-email/", f"token={VERIFY_TOKEN}")
    assert VERIFY_TOKEN.split(":")[-1] not in line
    assert '"GET /account/verify-email/?[redacted] HTTP/1.1" 400 387' in line


def test_a_token_in_the_path_or_the_referer_is_not_written():
    path = f"/email/unsubscribe/{UNSUBSCRIBE_TOKEN}/"
    line = access_line(path, referer=f"https://jobsite.example{path}")
    assert UNSUBSCRIBE_TOKEN.split(":")[-1] not in line
    assert "GET /email/unsubscribe/" in line


def test_the_basic_auth_user_of_a_webhook_is_not_written():
    import base64

    credentials = base64.b64encode(f"{WEBHOOK_USER}:s3cretPassw0rd".encode()).decode()
    line = access_line("/webhooks/anymail/postmark/tracking/", auth=f"Basic {credentials}")
    assert WEBHOOK_USER not in line
    assert line.startswith("203.0.113.9 - [redacted] ")


def test_ordinary_requests_are_written_as_they_are():
    line = access_line("/admin/jobs/failedjob/", "status=failed")
    assert '"GET /admin/jobs/failedjob/?[redacted] HTTP/1.1"' in line
    assert access_line("/orders/42/review").count("/orders/42/review") == 1
