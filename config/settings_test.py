"""Settings for the test suite: development mode on the real local PostgreSQL and Redis.

Tests use Redis database 15 (``TEST_REDIS_URL`` overrides) so a run never touches the
data of a developer's ``make run`` on database 0, and anymail's in-memory test backend.
The suite's own ``probe`` app (``tests/probe``) gives the worker processes tests start
actors that sleep, record their runs or kill their worker.
"""

import os

os.environ.setdefault("DEBUG", "true")
os.environ["REDIS_URL"] = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# anymail's in-memory test backend; processes a test starts may be given another
# (TEST_EMAIL_ESP=smtp or postmark, to a server the test runs and counts sends on).
os.environ["EMAIL_ESP"] = os.environ.get("TEST_EMAIL_ESP", "test")
os.environ.setdefault("DRAMATIQ_NAMESPACE", "jobsite-test")
# Worker maintenance (heartbeats, recovery, re-drive) off in the suite's in-process workers;
# the recovery tests start real worker processes with it on.
os.environ.setdefault("BROKER_MAINTENANCE_SECONDS", "0")
# Push through OneSignal's API: the tests point ONESIGNAL_API_URL at a local server.
os.environ.setdefault("PUSH_PROVIDER", "onesignal")
os.environ.setdefault("ONESIGNAL_APP_ID", "00000000-0000-4000-8000-00000000a99")
os.environ.setdefault("ONESIGNAL_API_KEY", "os_v2_app_test-only-key")
os.environ.setdefault("ONESIGNAL_API_URL", "http://127.0.0.1:1")
# Stripe webhooks signed with a test-only secret (tests sign with stripe's own helper);
# the Stripe API is a local server a test starts (STRIPE_API_BASE set per test).
os.environ.setdefault("STRIPE_WEBHOOK_SECRET", "whsec_test_only_secret")
os.environ.setdefault("STRIPE_SECRET_KEY", "sk_test_only")
os.environ.setdefault("STRIPE_API_BASE", "http://127.0.0.1:1")
# A review's rating recalculation runs 0.1 s after a burst, not a minute (a test that
# counts the runs of a burst sets its own).
os.environ.setdefault("RATING_RECALC_DEBOUNCE_SECONDS", "0.1")
# Basic auth of the ESP webhooks under test (a test-only value, not a secret).
os.environ.setdefault("ANYMAIL_WEBHOOK_SECRET", "esp-webhook:test-only-password")

# Local storage (archives, temp files) in a directory of this run, never the repo's .var.
if "LOCAL_STORAGE_DIR" not in os.environ:
    import tempfile

    _scratch = tempfile.mkdtemp(prefix="jobsite-test-")
    os.environ["LOCAL_STORAGE_DIR"] = f"{_scratch}/storage"
    os.environ.setdefault("TEMP_FILES_DIR", f"{_scratch}/tmp")

from config.settings import *  # noqa: E402,F403

# Django's test runner forces DEBUG off; the manifest storage would then want
# collectstatic first.
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Worker threads in tests must not keep connections to the test database open, or it
# cannot be dropped at the end of the run.
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
# Static files are served by runserver/whitenoise only outside tests.
MIDDLEWARE = [m for m in MIDDLEWARE if not m.startswith("whitenoise.")]  # noqa: F405
INSTALLED_APPS = [*INSTALLED_APPS, "tests.probe"]  # noqa: F405
