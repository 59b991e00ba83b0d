"""Readiness of the job platform: database, Redis, queues, workers, scheduler, clamd.

:func:`readiness_report` runs every check in parallel, each bounded by
``HEALTH_CHECK_TIMEOUT_SECONDS`` (a stopped Redis or a black-holed clamd must not hang a
probe), and returns a JSON-ready dict. ``/health/ready`` and ``manage.py jobs_health`` show
the same report. It carries no secrets: errors are reported by exception type, addresses
never include credentials.
"""

from __future__ import annotations

import concurrent.futures
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import connections
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobs.monitoring import broker_state
from jobs.redis import scheduler_heartbeat_key, scheduler_leader_key

# The scheduler writes its heartbeat at least every 15 s with a 60 s TTL.
SCHEDULER_STALE_SECONDS = 60


def _timeout() -> float:
    return float(getattr(settings, "HEALTH_CHECK_TIMEOUT_SECONDS", 2.0))


def monitoring_redis() -> redis.Redis:
    """A client with short timeouts and no retries, unlike the application's client: a
    probe or a dashboard must answer quickly when Redis is down. Close it after use."""
    timeout = _timeout()
    options = {
        **settings.REDIS_OPTIONS,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
        "health_check_interval": 0,
    }
    return redis.Redis(**options)


def _error(exc: BaseException) -> str:
    # The type only: messages of connection errors name hosts and sometimes users.
    return type(exc).__name__


# --- Individual checks. Each returns a dict with "ok" (bool). -------------------------------


def check_database() -> dict[str, Any]:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    finally:
        # Checks run in pool threads: their connections must not linger.
        connections["default"].close()


def check_redis(client: redis.Redis) -> dict[str, Any]:
    try:
        client.ping()
        return {"ok": True}
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}


def queue_limits(queue: str) -> tuple[int, float]:
    """(max ready messages, max oldest-message age in seconds) for ``queue``."""
    backlog = getattr(settings, "HEALTH_QUEUE_BACKLOG_LIMITS", {}).get(queue)
    age = getattr(settings, "HEALTH_QUEUE_AGE_LIMITS", {}).get(queue)
    return (
        int(backlog if backlog is not None else settings.HEALTH_QUEUE_MAX_BACKLOG),
        float(age if age is not None else settings.HEALTH_QUEUE_MAX_AGE_SECONDS),
    )


def check_queues(client: redis.Redis) -> dict[str, Any]:
    try:
        depths = broker_state.queue_depths(client)
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    queues: dict[str, Any] = {}
    for name, depth in depths.items():
        max_backlog, max_age = queue_limits(name)
        problems = []
        if depth.ready > max_backlog:
            problems.append(f"backlog {depth.ready} > {max_backlog}")
        if depth.oldest_age_seconds is not None and depth.oldest_age_seconds > max_age:
            problems.append(f"oldest message {depth.oldest_age_seconds:.0f} s > {max_age:.0f} s")
        if depth.orphaned:
            problems.append(f"{depth.orphaned} in-flight message(s) of dead workers not yet "
                            "recovered")
        queues[name] = {
            "ok": not problems,
            "ready": depth.ready,
            "in_flight": depth.in_flight,
            "delayed": depth.delayed,
            "dead": depth.dead,
            "orphaned": depth.orphaned,
            "oldest_age_seconds": (
                None if depth.oldest_age_seconds is None else round(depth.oldest_age_seconds, 1)
            ),
            "max_backlog": max_backlog,
            "max_age_seconds": max_age,
            "problems": problems,
        }
    return {"ok": all(q["ok"] for q in queues.values()), "queues": queues}


def check_workers(client: redis.Redis) -> dict[str, Any]:
    minimum = int(settings.HEALTH_MIN_WORKERS)
    try:
        live = broker_state.live_worker_count(client)
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    return {"ok": live >= minimum, "live": live, "minimum": minimum}


def check_scheduler(client: redis.Redis) -> dict[str, Any]:
    required = bool(settings.HEALTH_REQUIRE_SCHEDULER)
    try:
        raw, has_leader = client.pipeline(transaction=False).get(
            scheduler_heartbeat_key()
        ).exists(scheduler_leader_key()).execute()
    except Exception as exc:
        return {"ok": not required, "status": "unknown", "required": required,
                "error": _error(exc)}
    age = None
    if raw is not None:
        try:
            age = max(0.0, time.time() - float(raw))
        except ValueError:
            age = None
    running = age is not None and age <= SCHEDULER_STALE_SECONDS
    return {
        "ok": running or not required,
        "status": "running" if running else "not running",
        "heartbeat_age_seconds": None if age is None else round(age, 1),
        "leader": bool(has_leader),
        "required": required,
    }


# How long health keeps reporting a Redis data loss after it was recovered.
DATA_LOSS_REPORT_SECONDS = 24 * 3600


def check_redis_data(client: redis.Redis) -> dict[str, Any]:
    """Whether Redis still holds the data PostgreSQL knows it had (``jobs.recovery``): its
    epoch token. Not ok while Redis lacks it (data lost, recovery pending); a recovered
    loss stays in the report, as a warning, for a day."""
    from jobs.models import BrokerEpoch
    from jobs.recovery import epoch_key

    try:
        token = client.get(epoch_key())
        latest = BrokerEpoch.objects.order_by("-pk").first()
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    finally:
        connections["default"].close()
    if latest is None:
        return {"ok": True, "status": "no epoch yet (no worker has started)"}
    if token is None:
        return {"ok": False, "status": "data lost", "error": "Redis lost its data; "
                "recovery pending (a worker re-drives unfinished work within seconds)"}
    result: dict[str, Any] = {"ok": True, "status": "ok"}
    lost = (BrokerEpoch.objects.filter(data_lost_at__isnull=False).order_by("-pk").first())
    connections["default"].close()
    if lost is not None and (time.time() - lost.data_lost_at.timestamp()
                             < DATA_LOSS_REPORT_SECONDS):
        result.update(status="recovered from data loss",
                      data_lost_at=lost.data_lost_at.isoformat(), redriven=lost.redriven,
                      warning=f"Redis lost its data at {lost.data_lost_at:%Y-%m-%d %H:%M} "
                              f"UTC; {lost.redriven} unfinished job(s) re-driven")
    return result


def check_clamd() -> dict[str, Any]:
    address = settings.CLAMD_ADDRESS
    if not address:
        return {"ok": True, "status": "disabled"}
    parts = urlsplit(address)
    timeout = _timeout()
    try:
        if parts.scheme == "unix":
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            sock.connect(parts.path)
        elif parts.scheme == "tcp":
            sock = socket.create_connection((parts.hostname, parts.port or 3310), timeout)
        else:
            return {"ok": False, "error": "CLAMD_ADDRESS must start with tcp:// or unix://"}
        with sock:
            sock.sendall(b"zPING\0")
            reply = sock.recv(64)
    except Exception as exc:
        return {"ok": False, "error": _error(exc)}
    if reply.rstrip(b"\0\n") != b"PONG":
        return {"ok": False, "error": "unexpected reply"}
    return {"ok": True}


# --- The report ----------------------------------------------------------------------------


def readiness_report() -> dict[str, Any]:
    """Run every check (in parallel, each time-bounded) and say whether we are ready."""
    client = monitoring_redis()
    checks: dict[str, Callable[[], dict[str, Any]]] = {
        "database": check_database,
        "redis": lambda: check_redis(client),
        "redis_data": lambda: check_redis_data(client),
        "queues": lambda: check_queues(client),
        "workers": lambda: check_workers(client),
        "scheduler": lambda: check_scheduler(client),
        "clamd": check_clamd,
    }
    timeout = _timeout()
    results: dict[str, dict[str, Any]] = {}
    # Not a context manager: its exit would wait for a hung check.
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(checks),
                                                 thread_name_prefix="health")
    try:
        futures = {name: pool.submit(check) for name, check in checks.items()}
        deadline = time.monotonic() + timeout + 0.5
        for name, future in futures.items():
            try:
                results[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError:
                results[name] = {"ok": False, "error": "timeout"}
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
        client.close()
    failing = sorted(name for name, result in results.items() if not result["ok"])
    warnings = [result["warning"] for result in results.values() if result.get("warning")]
    return {"status": "ready" if not failing else "not ready", "failing": failing,
            "warnings": warnings, "checks": results}
