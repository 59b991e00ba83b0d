"""What every endpoint that takes input or enqueues work shares: a JSON body read safely
(a clear 400, never a 500), and one table of per-user job-creation limits (429 with
``Retry-After``).

Seed security requirement 12.1: "rate limiting for job creation". Every user-facing
endpoint that enqueues work is wrapped in :func:`rate_limited` with its entry of
:data:`ENDPOINT_LIMITS`; the README lists them. Staff actions in admin are not limited.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, JsonResponse

from jobs.ratelimit import RateLimit, RateLimitExceeded, rate_limit_hit

logger = logging.getLogger("jobs.http")

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32

# One row per endpoint: at most ``limit`` requests per user per ``period_seconds``.
ENDPOINT_LIMITS: dict[str, RateLimit] = {
    # POST /orders/<id>/review: a review enqueues the contractor's rating recalculation.
    "review-create": RateLimit(purpose="endpoint:review-create", limit=10, period_seconds=3600),
    # PATCH/DELETE /reviews/<id>: an edit of the rating or a removal enqueues the same.
    "review-change": RateLimit(purpose="endpoint:review-change", limit=20, period_seconds=3600),
    # POST /orders/<id>/pay: starts a payment (a PaymentIntent at Stripe, a pending row).
    "payment-start": RateLimit(purpose="endpoint:payment-start", limit=10,
                               period_seconds=3600),
    # GET /account/subscription: opens a Stripe customer-portal session (an API call).
    "billing-portal": RateLimit(purpose="endpoint:billing-portal", limit=20,
                                period_seconds=3600),
    # POST /push/devices: registers a device (no job; a misbehaving app must not flood it).
    "device-register": RateLimit(purpose="endpoint:device-register", limit=30,
                                 period_seconds=3600),
    # GET /search/contractors and /search/categories: no job, but each is a database
    # query anyone can send; per client address when anonymous.
    "search": RateLimit(purpose="endpoint:search", limit=60, period_seconds=60),
}


class BadJson(ValueError):
    """The body is not the JSON the endpoint takes; the message says why, never the value."""


def _depth_ok(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return False
            stack.extend((child, depth + 1)
                         for child in (item.values() if isinstance(item, dict) else item))
    return True


def parse_json(body: bytes, *, max_bytes: int = MAX_JSON_BYTES,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse ``body`` as UTF-8 JSON of bounded size and depth; numbers must be finite.

    Raises:
      BadJson: empty, too large, not UTF-8, not JSON, nested too deep, or holding a number
        too large for a float (``1e309``, ``NaN``).
    """
    if len(body) > max_bytes:
        raise BadJson(f"body larger than {max_bytes} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadJson("body is not UTF-8") from None
    if not text.strip():
        raise BadJson("empty body")

    def finite(literal: str) -> float:
        number = float(literal)
        if number in (float("inf"), float("-inf")):
            raise BadJson("a number out of range")
        return number

    def no_constant(literal: str) -> None:
        raise BadJson(f"{literal} is not JSON")

    try:
        value = json.loads(text, parse_float=finite, parse_constant=no_constant)
    except BadJson:
        raise
    except RecursionError:
        raise BadJson("nested too deep") from None
    except ValueError:
        raise BadJson("not JSON") from None
    if not _depth_ok(value, max_depth):
        raise BadJson("nested too deep")
    return value


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object. Raises :class:`BadJson`."""
    value = parse_json(request.body)
    if not isinstance(value, dict):
        raise BadJson("the body must be a JSON object")
    return value


def bad_request(reason: str) -> JsonResponse:
    return JsonResponse({"error": reason}, status=400)


def too_many_requests(exc: RateLimitExceeded) -> JsonResponse:
    response = JsonResponse({"error": "rate_limited", "purpose": exc.purpose,
                             "retry_after": exc.retry_after}, status=429)
    response["Retry-After"] = str(exc.retry_after)
    return response


def rate_limited(endpoint: str) -> Callable:
    """Limit the decorated view per user (per client address when anonymous) by
    ``ENDPOINT_LIMITS[endpoint]``; over the limit it answers 429 with ``Retry-After`` and
    does nothing. Every request counts, whatever the view answers."""
    limit = ENDPOINT_LIMITS[endpoint]

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            user = getattr(request, "user", None)
            subject = (f"user:{user.pk}" if user is not None and user.is_authenticated
                       else f"ip:{request.META.get('REMOTE_ADDR', '')}")
            try:
                rate_limit_hit(limit, subject)
            except RateLimitExceeded as exc:
                logger.warning("endpoint rate limit reached",
                               extra={"endpoint": endpoint, "retry_after": exc.retry_after})
                return too_many_requests(exc)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


class RateLimitMiddleware:
    """Django middleware: :class:`RateLimitExceeded` raised inside a view (a service's own
    limit) becomes HTTP 429 with ``Retry-After``."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if isinstance(exception, RateLimitExceeded):
            return too_many_requests(exception)
        return None
