"""Settings come from the environment; production refuses to start without them."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.redis import redis_connection_options
from config.settings import REQUIRED_IN_PRODUCTION

ROOT = Path(__file__).resolve().parent.parent

PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "x" * 64 + "-production-like-secret-key-for-the-check",
    "DATABASE_URL": "postgres://jobsite:pw@db.internal:5432/jobsite",
    "REDIS_URL": "rediss://:s3cret@cache.internal:6380/0",
    "ALLOWED_HOSTS": "jobs.example.ca",
    "DEFAULT_FROM_EMAIL": "Jobsite <no-reply@example.ca>",
    "EMAIL_ESP": "postmark",
    "JOB_PAYLOAD_KEYS": "Jt0e7mT4Mm0d7Lq3m4j5yR8b6c2vQ9wP1x3zA5s7D9E=",
    "METRICS_TOKEN": "metrics-token",
    "ANYMAIL_WEBHOOK_SECRET": "hook:secret",
    "STRIPE_SECRET_KEY": "sk_test_x",
    "STRIPE_WEBHOOK_SECRET": "whsec_x",
    "ONESIGNAL_APP_ID": "app",
    "ONESIGNAL_API_KEY": "key",
    "AWS_STORAGE_BUCKET_NAME": "media",
    "AWS_QUARANTINE_BUCKET_NAME": "quarantine",
    "AWS_ARCHIVE_BUCKET_NAME": "archive",
    "CDN_BASE_URL": "https://cdn.example.ca",
    "CLAMD_ADDRESS": "tcp://127.0.0.1:3310",
}


def run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if k not in PRODUCTION_ENV and k != "DJANGO_SETTINGS_MODULE"}
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True,
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", **env}, timeout=120,
    )


def test_every_required_variable_is_in_env_example():
    example = (ROOT / ".env.example").read_text()
    for name in REQUIRED_IN_PRODUCTION:
        assert f"{name}=" in example, name


@pytest.mark.parametrize("missing", ["SECRET_KEY", "REDIS_URL", "STRIPE_WEBHOOK_SECRET"])
def test_production_names_the_missing_variable(missing):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert missing in result.stderr
    assert "Production mode (DEBUG=false) needs these environment variables: " + missing \
        in result.stderr


def test_check_deploy_is_clean_with_production_values():
    result = run_manage(PRODUCTION_ENV, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_redis_url_with_password_and_tls_becomes_connection_options():
    options = redis_connection_options(
        "rediss://worker:p%40ss@cache.internal:6380/3", ca_file="/etc/ssl/redis-ca.pem"
    )
    assert options["host"] == "cache.internal"
    assert options["port"] == 6380
    assert options["db"] == 3
    assert options["username"] == "worker"
    assert options["password"] == "p@ss"
    assert options["ssl"] is True
    assert options["ssl_cert_reqs"] == "required"
    assert options["ssl_ca_certs"] == "/etc/ssl/redis-ca.pem"


def test_plain_redis_url_has_no_tls_and_no_auth():
    options = redis_connection_options("redis://127.0.0.1:6379/0")
    assert "ssl" not in options and "password" not in options
    assert (options["host"], options["port"], options["db"]) == ("127.0.0.1", 6379, 0)


def test_broker_gets_the_redis_options(settings):
    assert settings.DRAMATIQ_BROKER["OPTIONS"]["host"] == settings.REDIS_OPTIONS["host"]
    assert settings.DRAMATIQ_BROKER["MIDDLEWARE"], "an empty list means no middleware at all"


@pytest.mark.parametrize("url", ["http://host:6379/0", "redis://host:6379/zero"])
def test_bad_redis_url_is_a_clear_error(url):
    with pytest.raises(ValueError, match="REDIS_URL"):
        redis_connection_options(url)
