"""A benchmark command run as ``make bench`` runs it: its own process on
``config.settings_bench``, here on the test database, Redis database and namespace."""

import os
import subprocess
import sys

from django.conf import settings

from bench.runner import database_url


def bench_command(command: str, *args: str, **extra_env: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_bench",
           "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE, **extra_env}
    return subprocess.run([sys.executable, "manage.py", command, *args],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=300)
