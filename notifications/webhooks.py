"""The ESPs' tracking webhooks (bounces, complaints): anymail's views, behind a door that
answers bad input with a 4xx, never a 500 (ESPs post again after a 5xx, for days).

For each tracking URL (Postmark, Amazon SES through SNS, SendGrid, Mailgun), in order:

1. Wrong or missing HTTP basic-auth credentials → 401 with ``WWW-Authenticate`` (anymail's
   own check, which would otherwise answer 400), before the body is read.
2. The body must be what that ESP posts: JSON (``application/json``; SNS posts it as
   ``text/plain``), UTF-8, at most 32 levels deep (``jobs.http.parse_json``), of the ESP's shape (an
   object; SendGrid: a list of objects). Anything else — truncated or malformed JSON,
   ``[]``, ``null``, a bare string, an empty body, invalid UTF-8, deep nesting, a form or a
   multipart body — is a 400, logged with the ESP and the reason, never the body.
3. anymail's view. An event it cannot read (a field missing) is a 400 too, logged by type.

Only these tracking URLs are served: anymail's inbound-mail URLs are not.
"""

import functools
import logging
from collections.abc import Callable

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.webhooks.base import AnymailBasicAuthMixin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern

from jobs.http import BadJson, parse_json

logger = logging.getLogger(__name__)

# SendGrid posts events in batches: a large body is normal.
MAX_BODY_BYTES = 5 * 1024 * 1024


class MalformedWebhook(ValueError):
    """The body is not what the ESP posts; the message says why, never what it held."""


def webhook_json(request: HttpRequest, *, content_types: tuple[str, ...]) -> object:
    """The request's JSON body, parsed safely. Raises :class:`MalformedWebhook`."""
    content_type = request.content_type or ""
    if content_type not in content_types:
        raise MalformedWebhook(f"content type {content_type or 'missing'}")
    try:
        return parse_json(request.body, max_bytes=MAX_BODY_BYTES)
    except BadJson as exc:
        raise MalformedWebhook(str(exc)) from None


def _object(value) -> None:
    if not isinstance(value, dict):
        raise MalformedWebhook(f"a JSON {type(value).__name__}, not an object")


def _list_of_objects(value) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        raise MalformedWebhook("not a non-empty list of objects")


def _sns_message(value) -> None:
    _object(value)
    if not isinstance(value.get("Type"), str):
        raise MalformedWebhook("SNS message without a Type")
    if value["Type"] == "Notification" and not isinstance(value.get("Message"), str):
        raise MalformedWebhook("SNS notification without a Message")


JSON = ("application/json",)
# ESP name in anymail's URL names → (accepted content types, shape check).
TRACKING: dict[str, tuple[tuple[str, ...], Callable[[object], None]]] = {
    "postmark": (JSON, _object),
    "amazon_ses": (("application/json", "text/plain"), _sns_message),
    "sendgrid": (JSON, _list_of_objects),
    "mailgun": (JSON, _object),
}


def _unauthorized(request: HttpRequest) -> HttpResponse:
    logger.warning("ESP webhook refused: bad credentials", extra={"path": request.path})
    response = HttpResponse("Unauthorized", status=401, content_type="text/plain")
    response["WWW-Authenticate"] = 'Basic realm="jobsite-esp-webhooks"'
    return response


def _bad_request(request: HttpRequest, esp: str, reason: str) -> HttpResponse:
    logger.warning("ESP webhook refused: malformed body", extra={
        "esp": esp, "path": request.path, "reason": reason, "bytes": len(request.body)})
    return HttpResponse(f"Bad request: {reason}.\n", status=400, content_type="text/plain")


def guarded(view, esp: str):
    """anymail's tracking ``view`` of ``esp``, behind the checks of the module docstring."""
    content_types, shape = TRACKING[esp]
    view_class, initkwargs = view.view_class, view.view_initkwargs

    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs):
        if request.method != "POST":
            return view(request, *args, **kwargs)  # anymail's own answer (405, or SNS 401)
        try:
            AnymailBasicAuthMixin.validate_request(view_class(**initkwargs), request)
        except AnymailWebhookValidationFailure:
            return _unauthorized(request)
        try:
            shape(webhook_json(request, content_types=content_types))
        except MalformedWebhook as exc:
            return _bad_request(request, esp, str(exc))
        try:
            return view(request, *args, **kwargs)
        except AnymailWebhookValidationFailure:
            return _unauthorized(request)
        except (ValueError, KeyError, TypeError, AttributeError, LookupError,
                RecursionError) as exc:
            return _bad_request(request, esp, f"unreadable event ({type(exc).__name__})")

    return wrapped


def _tracking(pattern: URLPattern) -> str | None:
    name = pattern.name or ""
    esp = name.removesuffix("_tracking_webhook")
    return esp if name.endswith("_tracking_webhook") and esp in TRACKING else None


app_name = anymail_urls.app_name
urlpatterns = [
    URLPattern(pattern.pattern, guarded(pattern.callback, esp), pattern.default_args,
               pattern.name)
    for pattern in anymail_urls.urlpatterns
    if (esp := _tracking(pattern)) is not None
]
