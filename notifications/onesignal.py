"""The outside world of push: OneSignal's REST API, ``POST {ONESIGNAL_API_URL}/notifications``.

The only module that talks to OneSignal. A thin client over ``requests`` rather than the
official ``onesignal-python-api`` SDK: that SDK is an OpenAPI-generated client (urllib3,
models for every field, no keep-alive session per thread, no timeout by default), and
Jobsite sends one request shape; this module is what that shape needs and no more, with
timeouts on every call and every failure classified in one place.

Auth is ``Authorization: Key <ONESIGNAL_API_KEY>``; the key and the app id come from the
settings and are never logged. Each request carries an ``idempotency_key`` derived from
Jobsite's own record (:func:`idempotency_key`), so OneSignal drops a repeated request
instead of notifying twice.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import requests
from django.conf import settings
from django.core.signals import setting_changed

from jobs.scrub import exception_chain

# Idempotency keys are UUIDs (OneSignal's format), made from our record's name.
_NAMESPACE = uuid.UUID("6f1c2a3e-5b8d-4e0f-9a7c-2d4b6e8f0a1c")


def idempotency_key(name: str) -> str:
    """A UUID that is the same every time for the same record name (``push-log:42``)."""
    return str(uuid.uuid5(_NAMESPACE, name))


class OneSignalError(Exception):
    """The request failed. ``permanent``: a 4xx other than 429, retrying cannot help.
    ``retry_after``: seconds OneSignal asked to wait (429). ``description``: exception
    types and the HTTP status, never a response body."""

    def __init__(self, description: str, *, permanent: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status


@dataclass(frozen=True)
class Delivery:
    """What OneSignal said about a request it accepted (HTTP 200)."""

    notification_id: str  # empty: nothing was sent (no subscribed recipient)
    errors: list[str] = field(default_factory=list)  # OneSignal's own words, without ids
    invalid_external_ids: list[str] = field(default_factory=list)
    invalid_subscription_ids: list[str] = field(default_factory=list)

    @property
    def sent(self) -> bool:
        return bool(self.notification_id)


def notification_body(*, headings: dict[str, str], contents: dict[str, str],
                      data: dict[str, Any], key: str, external_ids: list[str] | None = None,
                      subscription_ids: list[str] | None = None) -> dict[str, Any]:
    """The JSON body of one push, as OneSignal documents it: one targeting mode only —
    users by external id (``include_aliases`` with ``target_channel: push``) or devices by
    subscription id — text keyed by language, ids-only ``data``, platform settings."""
    body: dict[str, Any] = {
        "app_id": settings.ONESIGNAL_APP_ID,
        "target_channel": "push",
        "headings": headings,
        "contents": contents,
        "data": data,
        "idempotency_key": key,
    }
    if external_ids is not None:
        body["include_aliases"] = {"external_id": external_ids}
    else:
        body["include_subscription_ids"] = subscription_ids or []
    if settings.ONESIGNAL_IOS_BADGE:
        body["ios_badgeType"], body["ios_badgeCount"] = "Increase", 1
    if settings.ONESIGNAL_IOS_SOUND:
        body["ios_sound"] = settings.ONESIGNAL_IOS_SOUND
    if settings.ONESIGNAL_ANDROID_CHANNEL_ID:
        body["android_channel_id"] = settings.ONESIGNAL_ANDROID_CHANNEL_ID
    return body


# One keep-alive session per worker thread (no TLS handshake per push).
_local = threading.local()
_generation = [0]


def _session() -> requests.Session:
    session = getattr(_local, "session", None)
    if session is None or _local.generation != _generation[0]:
        session = requests.Session()
        session.headers.update({"Content-Type": "application/json; charset=utf-8",
                                "Accept": "application/json"})
        _local.session, _local.generation = session, _generation[0]
    return session


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("ONESIGNAL_"):
        _generation[0] += 1


setting_changed.connect(_on_setting_changed)


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _errors(payload: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    errors = payload.get("errors")
    messages: list[str] = []
    external: list[str] = []
    subscriptions: list[str] = []
    if isinstance(errors, list):
        messages = [str(e)[:200] for e in errors]
    elif isinstance(errors, dict):
        aliases = errors.get("invalid_aliases") or {}
        if isinstance(aliases, dict):
            external = [str(i) for i in aliases.get("external_id") or []]
        external += [str(i) for i in errors.get("invalid_external_user_ids") or []]
        subscriptions = [str(i) for i in errors.get("invalid_player_ids") or []]
        messages = [key for key in errors if key not in (
            "invalid_aliases", "invalid_external_user_ids", "invalid_player_ids")]
    return messages, external, subscriptions


def _console(body: dict[str, Any]) -> Delivery:
    """``PUSH_PROVIDER=console``: print the push (device ids redacted), as Django's console
    email backend prints email."""
    shown = {**body}
    if "include_subscription_ids" in shown:
        shown["include_subscription_ids"] = ["[redacted]"] * len(body["include_subscription_ids"])
    print("Push:", json.dumps(shown, ensure_ascii=False, sort_keys=True), flush=True)
    return Delivery(notification_id=f"console-{body['idempotency_key']}")


def send(body: dict[str, Any]) -> Delivery:
    """POST one notification. Raises :class:`OneSignalError` (see its fields)."""
    if settings.PUSH_PROVIDER == "console":
        return _console(body)
    url = settings.ONESIGNAL_API_URL.rstrip("/") + "/notifications"
    try:
        response = _session().post(
            url, json=body, timeout=(settings.ONESIGNAL_CONNECT_TIMEOUT_SECONDS,
                                     settings.ONESIGNAL_TIMEOUT_SECONDS),
            headers={"Authorization": f"Key {settings.ONESIGNAL_API_KEY}"})
    except requests.RequestException as exc:
        _local.session = None  # a broken connection: the next push opens a new one
        raise OneSignalError(exception_chain(exc), permanent=False) from None
    status = response.status_code
    if status == 429:
        raise OneSignalError("OneSignal (HTTP 429)", permanent=False, status=status,
                             retry_after=_retry_after(response))
    if status >= 500:
        raise OneSignalError(f"OneSignal (HTTP {status})", permanent=False, status=status)
    if status >= 400:
        raise OneSignalError(f"OneSignal (HTTP {status})", permanent=True, status=status)
    try:
        payload = response.json()
    except ValueError:
        raise OneSignalError(f"OneSignal (HTTP {status}, not JSON)", permanent=False,
                             status=status) from None
    if not isinstance(payload, dict):
        raise OneSignalError(f"OneSignal (HTTP {status}, unexpected body)", permanent=False,
                             status=status)
    messages, external, subscriptions = _errors(payload)
    return Delivery(notification_id=str(payload.get("id") or ""), errors=messages,
                    invalid_external_ids=external, invalid_subscription_ids=subscriptions)
