"""Django middleware of the jobs app."""

from django.http import HttpRequest, JsonResponse

from jobs.ratelimit import RateLimitExceeded


class RateLimitMiddleware:
    """Turn :class:`RateLimitExceeded` raised by a view into HTTP 429 with Retry-After."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest):
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception):
        if not isinstance(exception, RateLimitExceeded):
            return None
        response = JsonResponse(
            {"error": "rate_limited", "purpose": exception.purpose,
             "retry_after": exception.retry_after},
            status=429,
        )
        response["Retry-After"] = str(exception.retry_after)
        return response
