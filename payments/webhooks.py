"""``POST /webhooks/stripe/``: verify, store once, enqueue, answer fast.

The signature is checked first (``payments.stripe_api.signature_verify``: the library's
HMAC check against each configured secret, within the tolerance), then the body is read
as JSON and stored in one ``INSERT … ON CONFLICT DO NOTHING``; its processing is enqueued
on commit. Bad signature, stale timestamp, malformed JSON: 400, logged with the reason and
the request's size only, nothing stored. A replay of a stored event: 200, nothing done.
A type no handler takes: 200, stored as ignored.
"""

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from payments.services.events import stripe_event_receive
from payments.stripe_api import BadDelivery, event_summary, signature_verify

logger = logging.getLogger("payments.webhooks")

#: Stripe's events are a few kilobytes; a body past this is not one of them.
MAX_BODY_BYTES = 512 * 1024


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    body = request.body
    try:
        if len(body) > MAX_BODY_BYTES:
            raise BadDelivery("body too large")
        signature_verify(body, request.headers.get("Stripe-Signature"))
        summary, _ = event_summary(body)
    except BadDelivery as exc:
        logger.warning("stripe webhook rejected", extra={"reason": str(exc),
                                                         "bytes": len(body)})
        return JsonResponse({"error": str(exc)}, status=400)
    event_id = stripe_event_receive(summary, body)
    return JsonResponse({"received": True, "duplicate": event_id is None})
