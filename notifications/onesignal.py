"""The outside world of push: OneSignal's REST API, ``POST {ONESIGNAL_API_URL}/notifications``.

The only module that talks to OneSignal. A thin client over ``urllib3`` rather than the
official ``onesignal-python-api`` SDK: that SDK is an OpenAPI-generated client (models
for every field, no timeout by default, its own retry rules), and Jobsite sends one
request shape; this module is what that shape needs and no more, with timeouts on every
call and every failure classified in one place. ``urllib3`` rather than ``requests``
(which it sits under): ``requests`` re-reads the proxy environment and merges session
settings on every call, half the CPU of a push (measured: ``push_deliver`` 3.0 → 2.1 ms
CPU; README "Performance"). A proxy in the environment (``HTTPS_PROXY``/``NO_PROXY``) is
still honoured, read once.

Auth is ``Authorization: Key <ONESIGNAL_API_KEY>``; the key and the app id come from the
settings and are never logged. Each request carries an ``idempotency_key`` derived from
Jobsite's own record (:func:`idempotency_key`), so OneSignal drops a repeated request
instead of notifying twice.
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import urllib3
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


# One pool of keep-alive connections per process, shared by its worker threads (urllib3's
# pools are thread-safe): no TLS handshake per push. Rebuilt when a setting changes.
_lock = threading.Lock()
_pool: list[urllib3.PoolManager | None] = [None]


def _http() -> urllib3.PoolManager:
    pool = _pool[0]
    if pool is None:
        with _lock:
            pool = _pool[0]
            if pool is None:
                pool = _pool[0] = _pool_for(settings.ONESIGNAL_API_URL)
    return pool


def _pool_for(url: str) -> urllib3.PoolManager:
    options: dict[str, Any] = {
        "maxsize": 32, "retries": False,  # the actor retries, with backoff
        "timeout": urllib3.Timeout(connect=settings.ONESIGNAL_CONNECT_TIMEOUT_SECONDS,
                                   read=settings.ONESIGNAL_TIMEOUT_SECONDS),
    }
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(parts.hostname or ""):
        return urllib3.ProxyManager(proxy, **options)
    return urllib3.PoolManager(**options)


def _on_setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("ONESIGNAL_"):
        with _lock:
            _pool[0] = None


setting_changed.connect(_on_setting_changed)


def _retry_after(response: urllib3.BaseHTTPResponse) -> float | None:
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


_console_lock = threading.Lock()


def _console(body: dict[str, Any]) -> Delivery:
    """``PUSH_PROVIDER=console``: print the push (device ids redacted), as Django's console
    email backend prints email."""
    shown = {**body}
    if "include_subscription_ids" in shown:
        shown["include_subscription_ids"] = ["[redacted]"] * len(body["include_subscription_ids"])
    line = "Push: " + json.dumps(shown, ensure_ascii=False, sort_keys=True) + "\n"
    with _console_lock:  # one write per push: worker threads' lines never interleave
        sys.stdout.write(line)
        sys.stdout.flush()
    return Delivery(notification_id=f"console-{body['idempotency_key']}")


def send(body: dict[str, Any]) -> Delivery:
    """POST one notification. Raises :class:`OneSignalError` (see its fields)."""
    if settings.PUSH_PROVIDER == "console":
        return _console(body)
    url = settings.ONESIGNAL_API_URL.rstrip("/") + "/notifications"
    try:
        response = _http().request(
            "POST", url, body=json.dumps(body).encode(), redirect=False,
            headers={"Content-Type": "application/json; charset=utf-8",
                     "Accept": "application/json",
                     "Authorization": f"Key {settings.ONESIGNAL_API_KEY}"})
    except urllib3.exceptions.HTTPError as exc:
        raise OneSignalError(exception_chain(exc), permanent=False) from None
    status = response.status
    if status == 429:
        raise OneSignalError("OneSignal (HTTP 429)", permanent=False, status=status,
                             retry_after=_retry_after(response))
    if status >= 500:
        raise OneSignalError(f"OneSignal (HTTP {status})", permanent=False, status=status)
    if status >= 300:  # 4xx, or a redirect: a wrong ONESIGNAL_API_URL
        raise OneSignalError(f"OneSignal (HTTP {status})", permanent=True, status=status)
    try:
        payload = json.loads(response.data)
    except ValueError:
        raise OneSignalError(f"OneSignal (HTTP {status}, not JSON)", permanent=False,
                             status=status) from None
    if not isinstance(payload, dict):
        raise OneSignalError(f"OneSignal (HTTP {status}, unexpected body)", permanent=False,
                             status=status)
    messages, external, subscriptions = _errors(payload)
    return Delivery(notification_id=str(payload.get("id") or ""), errors=messages,
                    invalid_external_ids=external, invalid_subscription_ids=subscriptions)
