"""Stripe: the one module of the project that imports ``stripe``.

Two things go through here. **Webhook signatures**: :func:`signature_verify` checks the
``Stripe-Signature`` header with the library's own ``WebhookSignature.verify_header``
(HMAC-SHA256 over ``timestamp.body``, constant-time compare, the timestamp within the
tolerance) against each configured secret, so a rotation accepts both. It does not build
the library's ``Event`` object: that costs about a millisecond per delivery and the
endpoint needs only the id, type and object id, which :func:`event_summary` reads from
the verified body with ``json``. **API calls**: :func:`stripe_client` is a ``StripeClient``
with timeouts, the library's network retries, and ``STRIPE_API_BASE`` (the tests' local
server); every call that writes carries an idempotency key derived from the operation
(:func:`idempotency_key`), never a random one, so a retried job cannot charge twice.

Errors are classified once here: :class:`StripeUnavailable` (network, 5xx, 429: retry)
and :class:`StripeRefused` (4xx: permanent).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any

import stripe
from django.conf import settings


class BadDelivery(ValueError):
    """A webhook delivery that is not a verified, well-formed Stripe event; the message
    says why in a few words, never the body."""


class StripeUnavailable(Exception):
    """Stripe could not be reached or failed (network, 5xx, 429): try again later."""


class StripeRefused(Exception):
    """Stripe refused the request (4xx): trying again will not help."""


@dataclass(frozen=True)
class EventSummary:
    id: str
    type: str
    object_id: str
    livemode: bool
    created: int  # Unix time


def signature_verify(body: bytes, header: str | None) -> None:
    """Raise :class:`BadDelivery` unless ``header`` signs ``body`` with one of the
    configured secrets, within the tolerance."""
    secrets = settings.STRIPE_WEBHOOK_SECRET
    if not secrets:
        raise BadDelivery("no webhook secret configured")
    if not header:
        raise BadDelivery("no Stripe-Signature header")
    try:
        payload = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadDelivery("body is not UTF-8") from None
    reason = "signature does not match"
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                payload, header, secret, tolerance=settings.STRIPE_WEBHOOK_TOLERANCE_SECONDS)
            return
        except stripe.SignatureVerificationError as exc:
            # The library's message says which check failed; its exception holds the body.
            text = str(exc.user_message or "")
            if "tolerance" in text:
                reason = "timestamp outside the tolerance"
            elif "extract" in text or "scheme" in text:
                reason = "malformed Stripe-Signature header"
    raise BadDelivery(reason)


def signature_header(body: str, *, secret: str | None = None) -> str:
    """A ``Stripe-Signature`` header for ``body`` signed now with ``secret`` (default: the
    first configured one), as Stripe makes it: for development tools and benchmarks."""
    return stripe.WebhookSignature.generate_signature_header(
        body, secret or settings.STRIPE_WEBHOOK_SECRET[0])


def event_summary(body: bytes) -> tuple[EventSummary, dict[str, Any]]:
    """The verified body's event id, type and object, and the parsed event.

    Raises:
      BadDelivery: not JSON, or not shaped like a Stripe event.
    """
    try:
        event = json.loads(body)
    except ValueError:
        raise BadDelivery("body is not JSON") from None
    if not isinstance(event, dict) or event.get("object") != "event":
        raise BadDelivery("not a Stripe event object")
    event_id, event_type = event.get("id"), event.get("type")
    data = event.get("data")
    if not (isinstance(event_id, str) and event_id.startswith("evt_") and len(event_id) < 255
            and isinstance(event_type, str) and 0 < len(event_type) < 100
            and isinstance(data, dict) and isinstance(data.get("object"), dict)
            and isinstance(event.get("created"), int)):
        raise BadDelivery("missing or malformed id, type, created or data.object")
    object_id = data["object"].get("id")
    return EventSummary(id=event_id, type=event_type,
                        object_id=object_id if isinstance(object_id, str) else "",
                        livemode=bool(event.get("livemode")),
                        created=event["created"]), event


def idempotency_key(*parts: Any) -> str:
    """A key for one operation, the same however often it is retried: the operation's
    name and ids (``idempotency_key("refund", payment.pk, 1)``), hashed to a fixed length
    so nothing personal reaches Stripe's logs."""
    text = ":".join(str(part) for part in parts)
    return "jobsite-" + hashlib.sha256(text.encode()).hexdigest()[:40]


_clients: dict[tuple, stripe.StripeClient] = {}
_lock = threading.Lock()


def stripe_client() -> stripe.StripeClient:
    """The process's ``StripeClient`` for the current settings."""
    key = (settings.STRIPE_SECRET_KEY, settings.STRIPE_API_BASE,
           settings.STRIPE_CONNECT_TIMEOUT_SECONDS, settings.STRIPE_TIMEOUT_SECONDS)
    with _lock:
        client = _clients.get(key)
        if client is None:
            base = {"api": settings.STRIPE_API_BASE} if settings.STRIPE_API_BASE else None
            http = stripe.RequestsClient(timeout=(settings.STRIPE_CONNECT_TIMEOUT_SECONDS,
                                                  settings.STRIPE_TIMEOUT_SECONDS))
            client = stripe.StripeClient(settings.STRIPE_SECRET_KEY or "sk_test_unset",
                                         base_addresses=base, http_client=http,
                                         max_network_retries=2)
            _clients[key] = client
        return client


def _call(function, *args, **kwargs) -> dict[str, Any]:
    """Run one API call; return the object as plain dicts; classify its failure."""
    try:
        result = function(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise StripeUnavailable(type(exc).__name__) from None
    except stripe.StripeError as exc:
        status = getattr(exc, "http_status", None) or 0
        if status >= 500 or status == 0:
            raise StripeUnavailable(f"{type(exc).__name__} {status}") from None
        raise StripeRefused(f"{type(exc).__name__} {status}") from None
    return result.to_dict() if hasattr(result, "to_dict") else result


def payment_intent_create(*, amount_cents: int, currency: str, metadata: dict[str, str],
                          key: str) -> dict[str, Any]:
    """Create a PaymentIntent; ``key`` is its idempotency key (one per order attempt)."""
    client = stripe_client()
    return _call(client.v1.payment_intents.create,
                 params={"amount": amount_cents, "currency": currency.lower(),
                         "metadata": metadata, "automatic_payment_methods": {"enabled": True}},
                 options={"idempotency_key": key})


def billing_portal_session_create(*, customer_id: str, return_url: str, key: str
                                  ) -> dict[str, Any]:
    """A Stripe Billing customer-portal session for ``customer_id`` (its ``url`` is where
    the customer updates the card, renews or cancels); ``key`` is its idempotency key."""
    return _call(stripe_client().v1.billing_portal.sessions.create,
                 params={"customer": customer_id, "return_url": return_url},
                 options={"idempotency_key": key})


def payment_intent_retrieve(intent_id: str) -> dict[str, Any]:
    return _call(stripe_client().v1.payment_intents.retrieve, intent_id,
                 params={"expand": ["latest_charge.balance_transaction"]})


def events_list(*, created_after: int, types: list[str],
                starting_after: str | None = None) -> dict[str, Any]:
    """One page (100) of events created after ``created_after`` (Unix time), newest
    first, as Stripe lists them (30 days are kept)."""
    params: dict[str, Any] = {"created": {"gt": created_after}, "limit": 100,
                              "types": types}
    if starting_after:
        params["starting_after"] = starting_after
    return _call(stripe_client().v1.events.list, params=params)
