"""Jobsite settings, all read from the environment through one django-environ ``env``.

Development (``DEBUG=true``) runs on safe local defaults. Production (``DEBUG=false``,
the default) refuses to start while a required variable is missing and names each one.
``.env.example`` lists every variable.
"""

from pathlib import Path
from urllib.parse import unquote

import environ
from django.core.exceptions import ImproperlyConfigured

from config.redis import redis_connection_options

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DEBUG", default=False)

# Variables production cannot run without. In development each has a local default.
REQUIRED_IN_PRODUCTION = (
    "SECRET_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "ALLOWED_HOSTS",
    "DEFAULT_FROM_EMAIL",
    "EMAIL_ESP",
    "JOB_PAYLOAD_KEYS",
    "METRICS_TOKEN",
    "ANYMAIL_WEBHOOK_SECRET",
    "STRIPE_SECRET_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "ONESIGNAL_APP_ID",
    "ONESIGNAL_API_KEY",
    "AWS_STORAGE_BUCKET_NAME",
    "AWS_QUARANTINE_BUCKET_NAME",
    "AWS_ARCHIVE_BUCKET_NAME",
    "CDN_BASE_URL",
    "CLAMD_ADDRESS",
)


def _check_production_environment() -> None:
    missing = [name for name in REQUIRED_IN_PRODUCTION if not env.str(name, default="")]
    if missing:
        raise ImproperlyConfigured(
            "Production mode (DEBUG=false) needs these environment variables: "
            + ", ".join(missing)
            + ". Set them, or set DEBUG=true for local development."
        )


if not DEBUG:
    _check_production_environment()

# Development-only key; production has SECRET_KEY from the environment (checked above).
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-jobsite-development-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_dramatiq",
    "django_apscheduler",
    "anymail",
    # Imports run one way: analytics → domain apps → audit → jobs (the platform).
    "jobs",
    "audit",
    "marketplace",
    "notifications",
    "media",
    "payments",
    "retention",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "jobs.http.RateLimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": env.db_url(
        "DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/jobsite"
    ),
}
# A Unix-socket directory may be given URL-encoded as the host (postgres://u@%2Fsock%2Fdir/db).
DATABASES["default"]["HOST"] = unquote(DATABASES["default"].get("HOST", ""))
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# A database that does not answer must not hang a worker or a probe for minutes.
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env.int(
    "DB_CONNECT_TIMEOUT", default=5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "marketplace.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"

# Storage is UTC; the marketplace's business day is Toronto's.
USE_TZ = True
TIME_ZONE = "UTC"
BUSINESS_TIME_ZONE = env.str("BUSINESS_TIME_ZONE", default="America/Toronto")
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("fr", "Français")]
USE_I18N = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / ".var" / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = BASE_DIR / ".var" / "media"
MEDIA_URL = "media/"
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")

# --- Redis and the Dramatiq broker -------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="redis://127.0.0.1:6379/0")
REDIS_CA_FILE = env.str("REDIS_CA_FILE", default="")
REDIS_OPTIONS = redis_connection_options(REDIS_URL, ca_file=REDIS_CA_FILE or None)

DRAMATIQ_NAMESPACE = env.str("DRAMATIQ_NAMESPACE", default="jobsite")
# Sessions live in PostgreSQL, read through Redis (jobs/sessions.py: a Redis outage falls
# back to the database). The cache's keys sit under the namespace like every other key.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "sessions": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": f"{DRAMATIQ_NAMESPACE}:sessions",
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2,
                    **({"ssl_ca_certs": REDIS_CA_FILE} if REDIS_CA_FILE else {})},
    },
}
SESSION_ENGINE = "jobs.sessions"
SESSION_CACHE_ALIAS = "sessions"

# Recovery (jobs.recovery): a worker whose heartbeat is older than the timeout is dead and
# its in-flight messages go back to the head of their queues; every worker process writes
# its heartbeat and runs that recovery every BROKER_MAINTENANCE_SECONDS (0: off, tests).
# Bound: a killed worker's messages run again within timeout + maintenance period.
BROKER_HEARTBEAT_TIMEOUT_SECONDS = env.float("BROKER_HEARTBEAT_TIMEOUT_SECONDS", default=15)
BROKER_MAINTENANCE_SECONDS = env.float("BROKER_MAINTENANCE_SECONDS", default=5)
# A message whose worker died this many times while running it is not run again.
JOB_MAX_WORKER_CRASHES = env.int("JOB_MAX_WORKER_CRASHES", default=3)
# Records of stateful actors unfinished this long with no message in Redis are re-driven,
# checked this often (by one worker process of the cluster).
REDRIVE_AFTER_SECONDS = env.float("REDRIVE_AFTER_SECONDS", default=60)
REDRIVE_EVERY_SECONDS = env.float("REDRIVE_EVERY_SECONDS", default=30)
# Always explicit: without "MIDDLEWARE" django-dramatiq's broker gets none at all, and its
# default list names a Prometheus class dramatiq 2 moved. AdminMiddleware (a DB row per
# message) stays off: it caps throughput far below the email target. The order matters
# and is enforced by the jobs.E00x system checks (jobs/checks.py says why each place).
# Each middleware costs every job, so Dramatiq's Callbacks, Pipelines and
# ShutdownNotifications are left out until an actor needs them.
DRAMATIQ_MIDDLEWARE = [
    "jobs.middleware.execution.JobExecution",
    "jobs.middleware.stats.JobStatsMiddleware",
    "jobs.middleware.recovery.WorkerRecovery",
    "jobs.middleware.database.DatabaseOutageGate",
    "dramatiq.middleware.AgeLimit",
    "dramatiq.middleware.TimeLimit",
    "dramatiq.middleware.Retries",
    "jobs.middleware.database.DatabaseOutageRetries",
    "dramatiq.middleware.CurrentMessage",
    "jobs.middleware.debounce.DebounceRelease",
    "jobs.middleware.connections.DatabaseConnections",
    "jobs.middleware.schedule_lock.ScheduleRunLock",
]
DRAMATIQ_BROKER = {
    # Dramatiq's RedisBroker, plus dead-lettering of messages that cannot be decrypted.
    "BROKER": "jobs.broker.JobsiteRedisBroker",
    "OPTIONS": {"namespace": DRAMATIQ_NAMESPACE, **REDIS_OPTIONS,
                "heartbeat_timeout": int(BROKER_HEARTBEAT_TIMEOUT_SECONDS * 1000)},
    "MIDDLEWARE": DRAMATIQ_MIDDLEWARE,
}
DRAMATIQ_TASKS_DATABASE = "default"
# Every app declares its actors in its tasks module.
DRAMATIQ_AUTODISCOVER_MODULES = ["tasks"]

# Keys for job-payload encryption (32 bytes, urlsafe base64). The first encrypts; all
# decrypt, so a key can be rotated by putting the new one first.
JOB_PAYLOAD_KEYS = env.list("JOB_PAYLOAD_KEYS", default=[])
# Every message body in Redis is encrypted with those keys (a key derived from SECRET_KEY
# when none is set, in development).
DRAMATIQ_ENCODER = "jobs.encryption.EncryptedJSONEncoder"
# Failed-job records are deleted this many days after their last failure.
FAILED_JOB_RETENTION_DAYS = env.int("FAILED_JOB_RETENTION_DAYS", default=30)
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --- Job statistics, metrics and health (jobs.monitoring) --------------------------------
# Workers buffer job statistics in memory and write them to Redis this often.
JOB_STATS_FLUSH_SECONDS = env.float("JOB_STATS_FLUSH_SECONDS", default=1.0)
# Per-minute stats stay this long in Redis; job_stats_rollup keeps hourly rows in PostgreSQL.
JOB_STATS_REDIS_RETENTION_HOURS = env.float("JOB_STATS_REDIS_RETENTION_HOURS", default=6)
# Worker Prometheus exporter (one per rundramatiq); off when unset.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=None)
WORKER_METRICS_HOST = env.str("WORKER_METRICS_HOST", default="127.0.0.1")
WORKER_METRICS_DIR = env.str("WORKER_METRICS_DIR", default="")
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=2.0)
HEALTH_QUEUE_MAX_BACKLOG = env.int("HEALTH_QUEUE_MAX_BACKLOG", default=10_000)
HEALTH_QUEUE_MAX_AGE_SECONDS = env.float("HEALTH_QUEUE_MAX_AGE_SECONDS", default=600)
# Per-queue overrides, e.g. "images=500,emails=20000" and "images=1800,analytics=3600".
HEALTH_QUEUE_BACKLOG_LIMITS = env.dict("HEALTH_QUEUE_BACKLOG_LIMITS", cast={"value": int},
                                       default={})
HEALTH_QUEUE_AGE_LIMITS = env.dict(
    "HEALTH_QUEUE_AGE_LIMITS", cast={"value": float},
    default={"maintenance": 3600.0, "analytics": 3600.0, "images": 1800.0},
)
HEALTH_MIN_WORKERS = env.int("HEALTH_MIN_WORKERS", default=1)
HEALTH_REQUIRE_SCHEDULER = env.bool("HEALTH_REQUIRE_SCHEDULER", default=False)

# --- Email ------------------------------------------------------------------------
# EMAIL_ESP names an anymail ESP ("postmark", "amazon_ses", "sendgrid", ...); "smtp" sends
# through an SMTP relay (EMAIL_HOST, ...); "console" prints mail (development); "test"
# keeps it in memory (tests).
EMAIL_ESP = env.str("EMAIL_ESP", default="console")
_EMAIL_BACKENDS = {
    "console": "django.core.mail.backends.console.EmailBackend",
    "smtp": "django.core.mail.backends.smtp.EmailBackend",
    "test": "anymail.backends.test.EmailBackend",
    "postmark": "anymail.backends.postmark.EmailBackend",
    "amazon_ses": "anymail.backends.amazon_ses.EmailBackend",
    "sendgrid": "anymail.backends.sendgrid.EmailBackend",
    "mailgun": "anymail.backends.mailgun.EmailBackend",
}
if EMAIL_ESP not in _EMAIL_BACKENDS:
    raise ImproperlyConfigured(
        f"EMAIL_ESP={EMAIL_ESP!r} is not one of: {', '.join(sorted(_EMAIL_BACKENDS))}"
    )
EMAIL_BACKEND = _EMAIL_BACKENDS[EMAIL_ESP]
# EMAIL_ESP=smtp: the relay. Port 587 with STARTTLS by default.
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Jobsite <no-reply@jobsite.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ANYMAIL = {
    "POSTMARK_SERVER_TOKEN": env.str("POSTMARK_SERVER_TOKEN", default=""),
    "SENDGRID_API_KEY": env.str("SENDGRID_API_KEY", default=""),
    "MAILGUN_API_KEY": env.str("MAILGUN_API_KEY", default=""),
    "MAILGUN_SENDER_DOMAIN": env.str("MAILGUN_SENDER_DOMAIN", default=""),
    # "user:password" that the ESP's webhook posts with (HTTP basic auth).
    "WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", default=""),
    # Empty means the ESP's own API; tests point it at a local HTTP server.
    **({"POSTMARK_API_URL": url} if (url := env.str("POSTMARK_API_URL", default="")) else {}),
    # Amazon SES: its SNS topic of bounces and complaints posts to
    # /webhooks/anymail/amazon_ses/tracking/ (with the basic auth in the URL).
    "AMAZON_SES_CLIENT_PARAMS": {
        "region_name": env.str("AWS_SES_REGION_NAME", default="ca-central-1"),
    },
}
# How long an email-verification link stays valid (password-reset links follow Django's
# PASSWORD_RESET_TIMEOUT).
EMAIL_VERIFICATION_MAX_AGE = env.int("EMAIL_VERIFICATION_MAX_AGE", default=3 * 24 * 3600)
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3600)
# Where operational alerts go (failure streaks, reports). Comma-separated addresses.
STAFF_ALERT_EMAILS = env.list("STAFF_ALERT_EMAILS", default=[])

# --- Storage (S3-compatible) --------------------------------------------------------
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default="")
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default="ca-central-1")
AWS_ACCESS_KEY_ID = env.str("AWS_ACCESS_KEY_ID", default="")
AWS_SECRET_ACCESS_KEY = env.str("AWS_SECRET_ACCESS_KEY", default="")
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="jobsite-media")
AWS_QUARANTINE_BUCKET_NAME = env.str("AWS_QUARANTINE_BUCKET_NAME", default="jobsite-quarantine")
AWS_ARCHIVE_BUCKET_NAME = env.str("AWS_ARCHIVE_BUCKET_NAME", default="jobsite-archive")
CDN_BASE_URL = env.str("CDN_BASE_URL", default="")
# "s3" (AWS or any S3-compatible endpoint), or "local": directories under LOCAL_STORAGE_DIR,
# one per bucket name (development; make run's default, so a newcomer needs no bucket).
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local" if DEBUG else "s3")
if STORAGE_BACKEND not in ("s3", "local"):
    raise ImproperlyConfigured(f"STORAGE_BACKEND={STORAGE_BACKEND!r} is not s3 or local")
LOCAL_STORAGE_DIR = env.path("LOCAL_STORAGE_DIR", default=BASE_DIR / ".var" / "storage")
S3_CONNECT_TIMEOUT_SECONDS = env.float("S3_CONNECT_TIMEOUT_SECONDS", default=5)
S3_READ_TIMEOUT_SECONDS = env.float("S3_READ_TIMEOUT_SECONDS", default=60)
# Cold storage of retention archives: a prefix of the archive bucket; the daily backup
# verification re-checks the archives of this many days against their manifests.
ARCHIVE_PREFIX = env.str("ARCHIVE_PREFIX", default="retention/")
ARCHIVE_VERIFY_DAYS = env.int("ARCHIVE_VERIFY_DAYS", default=35)
# Temporary storage (uploads in progress, processing leftovers): a local directory and a
# prefix of the media bucket. The temp-files cleanup empties both of what is 24 hours old.
TEMP_FILES_DIR = env.path("TEMP_FILES_DIR", default=BASE_DIR / ".var" / "tmp")
TEMP_S3_PREFIX = env.str("TEMP_S3_PREFIX", default="tmp/")

# --- Payments and push --------------------------------------------------------------
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
# The endpoint's signing secret; during a rotation, the new and the old one, comma-
# separated (a delivery signed with any of them is accepted).
# Development (make run) signs with a fixed, public value so `manage.py stripe_event` and
# `stripe listen --forward-to` work out of the box; production must set its own.
STRIPE_WEBHOOK_SECRET = env.list("STRIPE_WEBHOOK_SECRET",
                                 default=["whsec_jobsite_development_only"] if DEBUG else [])
# Oldest signature timestamp accepted, seconds (Stripe's libraries default to 300).
STRIPE_WEBHOOK_TOLERANCE_SECONDS = env.int("STRIPE_WEBHOOK_TOLERANCE_SECONDS", default=300)
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
STRIPE_CONNECT_TIMEOUT_SECONDS = env.float("STRIPE_CONNECT_TIMEOUT_SECONDS", default=3)
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=20)
# Reconciliation: payments still pending after this many minutes are asked of Stripe, and
# events of the last PAYMENT_RECONCILE_LOOKBACK_HOURS we never received are fetched.
PAYMENT_RECONCILE_AFTER_MINUTES = env.int("PAYMENT_RECONCILE_AFTER_MINUTES", default=60)
PAYMENT_RECONCILE_LOOKBACK_HOURS = env.int("PAYMENT_RECONCILE_LOOKBACK_HOURS", default=72)
# Contractor subscriptions (payments.services.subscriptions). A failed renewal keeps the
# features SUBSCRIPTION_GRACE_DAYS after the first failure, with dunning emails at once and
# on these days after it (calendar days in BUSINESS_TIME_ZONE); the renewal reminder goes
# SUBSCRIPTION_REMINDER_DAYS before a renewal (Stripe's invoice.upcoming, or the daily run).
SUBSCRIPTION_GRACE_DAYS = env.int("SUBSCRIPTION_GRACE_DAYS", default=7)
SUBSCRIPTION_DUNNING_DAYS = env.list("SUBSCRIPTION_DUNNING_DAYS", cast=int, default=[1, 3, 5])
SUBSCRIPTION_REMINDER_DAYS = env.int("SUBSCRIPTION_REMINDER_DAYS", default=7)
# PUSH_PROVIDER: "onesignal", or "console" (development: prints each push, device ids
# redacted). Production needs ONESIGNAL_APP_ID and ONESIGNAL_API_KEY.
PUSH_PROVIDER = env.str("PUSH_PROVIDER", default="console" if DEBUG else "onesignal")
if PUSH_PROVIDER not in ("onesignal", "console"):
    raise ImproperlyConfigured(f"PUSH_PROVIDER={PUSH_PROVIDER!r} is not onesignal or console")
ONESIGNAL_APP_ID = env.str("ONESIGNAL_APP_ID", default="")
ONESIGNAL_API_KEY = env.str("ONESIGNAL_API_KEY", default="")
ONESIGNAL_API_URL = env.str("ONESIGNAL_API_URL", default="https://api.onesignal.com")
ONESIGNAL_TIMEOUT_SECONDS = env.float("ONESIGNAL_TIMEOUT_SECONDS", default=10)
ONESIGNAL_CONNECT_TIMEOUT_SECONDS = env.float("ONESIGNAL_CONNECT_TIMEOUT_SECONDS", default=3)
# Campaign batches keep under OneSignal's per-app request rate (rescheduled, never waited).
ONESIGNAL_MAX_REQUESTS_PER_SECOND = env.int("ONESIGNAL_MAX_REQUESTS_PER_SECOND", default=50)
ONESIGNAL_IOS_BADGE = env.bool("ONESIGNAL_IOS_BADGE", default=True)
ONESIGNAL_IOS_SOUND = env.str("ONESIGNAL_IOS_SOUND", default="")
ONESIGNAL_ANDROID_CHANNEL_ID = env.str("ONESIGNAL_ANDROID_CHANNEL_ID", default="")
# Users per OneSignal request of a campaign (its documents say 2,000 or 20,000: 2,000).
PUSH_BATCH_SIZE = env.int("PUSH_BATCH_SIZE", default=2000)

# --- Marketplace: ratings, badges, visibility (marketplace.ratings) ----------------------
# A review written, edited or removed recalculates its subject's rating this many seconds
# after the first change of a burst (one run per burst).
RATING_RECALC_DEBOUNCE_SECONDS = env.float("RATING_RECALC_DEBOUNCE_SECONDS", default=60)
# C of the Bayesian average (C·m + sum) / (C + n): reviews' worth of the platform mean.
RATING_BAYESIAN_CONFIDENCE = env.int("RATING_BAYESIAN_CONFIDENCE", default=10)
# Profiles (then users) per chunk of the nightly full recalculation: one transaction each.
RATING_RECALC_CHUNK_SIZE = env.int("RATING_RECALC_CHUNK_SIZE", default=5000)
if RATING_BAYESIAN_CONFIDENCE < 1 or RATING_RECALC_CHUNK_SIZE < 1:
    raise ImproperlyConfigured("RATING_BAYESIAN_CONFIDENCE and RATING_RECALC_CHUNK_SIZE must "
                               "be at least 1")

# --- Contractor search (marketplace.search) ------------------------------------------
# The engine that answers searches (a dotted path; README "Search" on adding OpenSearch).
SEARCH_BACKEND = env.str("SEARCH_BACKEND",
                         default="marketplace.search.backends.PostgresSearchBackend")
# "near this city" finds profiles within this many km of it, unless a search says otherwise.
SEARCH_NEAR_RADIUS_KM = env.float("SEARCH_NEAR_RADIUS_KM", default=50)
# A changed profile's entry is rebuilt this long after the first change of a burst.
SEARCH_REINDEX_DELAY_MS = env.int("SEARCH_REINDEX_DELAY_MS", default=10_000)
# Profiles per step (one transaction) of the nightly reindex.
SEARCH_REINDEX_CHUNK = env.int("SEARCH_REINDEX_CHUNK", default=5000)

# --- Virus scanning -------------------------------------------------------------------
# "tcp://127.0.0.1:3310" or "unix:///path/to/clamd.sock"; empty disables scanning (dev only).
CLAMD_ADDRESS = env.str("CLAMD_ADDRESS", default="tcp://127.0.0.1:3310")

# --- Scheduler (runscheduler) and operations jobs ---------------------------------------
# Edits to schedules apply within this many seconds (at most 10).
SCHEDULER_SYNC_SECONDS = env.float("SCHEDULER_SYNC_SECONDS", default=5)
# A standby scheduler takes over within this many seconds when the leader dies.
SCHEDULER_LOCK_TTL_SECONDS = env.float("SCHEDULER_LOCK_TTL_SECONDS", default=30)
SCHEDULE_EXECUTION_RETENTION_DAYS = env.int("SCHEDULE_EXECUTION_RETENTION_DAYS", default=30)
LOG_DIR = env.str("LOG_DIR", default="")
LOG_RETENTION_DAYS = env.int("LOG_RETENTION_DAYS", default=30)
CERT_CHECK_HOSTS = env.list("CERT_CHECK_HOSTS", default=[])
CERT_CHECK_CA_FILE = env.str("CERT_CHECK_CA_FILE", default="")
CERT_CHECK_WARN_DAYS = env.int("CERT_CHECK_WARN_DAYS", default=30)
CERT_CHECK_TIMEOUT_SECONDS = env.float("CERT_CHECK_TIMEOUT_SECONDS", default=10)
SECURITY_AUDIT_STAFF_INACTIVE_DAYS = env.int("SECURITY_AUDIT_STAFF_INACTIVE_DAYS", default=90)
SECURITY_AUDIT_MAX_SUPERUSERS = env.int("SECURITY_AUDIT_MAX_SUPERUSERS", default=3)
SECURITY_AUDIT_FAILED_LOGIN_WINDOW_HOURS = env.int("SECURITY_AUDIT_FAILED_LOGIN_WINDOW_HOURS",
                                                   default=24)
SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD = env.int("SECURITY_AUDIT_FAILED_LOGIN_THRESHOLD",
                                                default=50)
SECURITY_AUDIT_FAILED_LOGIN_PER_ACCOUNT = env.int("SECURITY_AUDIT_FAILED_LOGIN_PER_ACCOUNT",
                                                  default=10)

# --- Statistics (analytics) -------------------------------------------------------------
# A figure that counts people (users by role, by province) is stored only when at least this
# many people are in the group; smaller groups are stored as NULL and flagged suppressed.
ANALYTICS_MIN_GROUP_SIZE = env.int("ANALYTICS_MIN_GROUP_SIZE", default=5)

# --- Logging: one JSON object per line on stderr ----------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "jobs.logging.JsonFormatter"}},
    # Dramatiq logs failed messages with their arguments and exception text: scrubbed.
    # Django's request log lines quote URLs, and email links carry tokens in theirs.
    # Every record's exception text is scrubbed: it may quote a request body.
    "filters": {"scrub_dramatiq": {"()": "jobs.scrub.DramatiqLogFilter"},
                "scrub_requests": {"()": "jobs.scrub.RequestLogFilter"},
                "scrub_exceptions": {"()": "jobs.scrub.ExceptionTextFilter"}},
    # In Dramatiq worker processes INFO lines are written in batches at least every
    # LOG_FLUSH_SECONDS, WARNING and above at once (jobs.logging.BufferedStreamHandler).
    "handlers": {"stderr": {"class": "jobs.logging.BufferedStreamHandler", "formatter": "json",
                            "filters": ["scrub_dramatiq", "scrub_requests",
                                        "scrub_exceptions"],
                            "flush_interval": env.float("LOG_FLUSH_SECONDS", default=0.2)}},
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        # Django's defaults add plain-text console handlers (when DEBUG) to these: every
        # line goes through the JSON handler and its filters instead.
        "django": {"handlers": [], "level": "INFO"},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
        "django.db.backends": {"level": "INFO"},
        "dramatiq": {"level": env.str("DRAMATIQ_LOG_LEVEL", default="WARNING")},
    },
}

# --- Production hardening ---------------------------------------------------------------
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
