"""Operational endpoints of the jobs app: health probes and Prometheus metrics."""

import hmac

import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from jobs.monitoring.health import readiness_report
from jobs.monitoring.metrics import JobStatsCollector, QueueCollector


@never_cache
@require_safe
def health_live(request: HttpRequest) -> JsonResponse:
    """The process is up and serving. Checks no dependency, on purpose: a liveness probe
    that fails when Redis is down would restart healthy web processes for nothing."""
    return JsonResponse({"status": "alive"})


@never_cache
@require_safe
def health_ready(request: HttpRequest) -> JsonResponse:
    """200 with the readiness report when every check passes, else 503 with it."""
    report = readiness_report()
    return JsonResponse(report, status=200 if report["status"] == "ready" else 503)


def _metrics_access(request: HttpRequest) -> int | None:
    """None when allowed, else the HTTP status to refuse with."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        expected = settings.METRICS_TOKEN
        if (scheme.lower() == "bearer" and expected
                and hmac.compare_digest(token.strip().encode(), expected.encode())):
            return None
        return 403
    if request.user.is_authenticated:
        return None if request.user.is_active and request.user.is_staff else 403
    return 401


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text: cluster-wide job counters from the Redis stats and queue gauges.

    Readable with ``Authorization: Bearer <METRICS_TOKEN>`` or by a staff session.
    """
    refusal = _metrics_access(request)
    if refusal == 401:
        response = HttpResponse("Authentication required.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if refusal:
        return HttpResponse("Forbidden.\n", status=403, content_type="text/plain")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobStatsCollector())
    registry.register(QueueCollector())
    try:
        body = generate_latest(registry)
    except redis.RedisError as exc:
        # A failed scrape, not a 500 page: Prometheus records it and alerts on `up`.
        return HttpResponse(f"Redis unavailable ({type(exc).__name__}).\n", status=503,
                            content_type="text/plain")
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
