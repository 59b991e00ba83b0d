"""anymail's ESP webhook URLs, answering 401 (not 400) to wrong basic-auth credentials.

anymail raises ``AnymailWebhookValidationFailure`` (a ``SuspiciousOperation``, which
Django turns into 400) when a webhook's basic auth is missing or wrong. A 401 with
``WWW-Authenticate`` is what the ESPs' webhook setup pages expect for bad credentials,
and it keeps these probes out of the suspicious-operation log. Everything else is
anymail's own view, unchanged.
"""

import functools
import logging

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailWebhookValidationFailure
from django.http import HttpResponse
from django.urls import URLPattern

logger = logging.getLogger(__name__)


def _unauthorized_as_401(view):
    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except AnymailWebhookValidationFailure:
            logger.warning("ESP webhook refused: bad credentials", extra={"path": request.path})
            response = HttpResponse("Unauthorized", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Basic realm="jobsite-esp-webhooks"'
            return response

    return wrapped


app_name = anymail_urls.app_name
urlpatterns = [
    URLPattern(pattern.pattern, _unauthorized_as_401(pattern.callback), pattern.default_args,
               pattern.name)
    for pattern in anymail_urls.urlpatterns
]
