"""Encryption of job payloads at rest: Dramatiq messages in Redis and failed-job arguments.

Every message body is one Fernet token (AES-128-CBC + HMAC-SHA256, so authenticated): a
message altered or written with an unknown key is rejected, never run. Keys come from
``JOB_PAYLOAD_KEYS`` through ``MultiFernet``: the first key encrypts, every key decrypts,
so a key is rotated by putting the new one first and dropping the old one once queues
(and the failed-job list) no longer hold messages written with it. Without keys
(development and tests; production refuses to start without them) a key is derived from
``SECRET_KEY``.

A body is ``jse1:<message id>.<redis message id>:<token>``. The two ids are random UUIDs,
not personal data; they are in clear so that a body which cannot be decrypted can still be
dead-lettered and named in the failed-job list (see ``jobs.broker``).
"""

import base64
import hashlib
import json
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from dramatiq.encoder import Encoder, MessageData
from dramatiq.errors import DecodeError

PREFIX = b"jse1:"


class UndecryptableMessage(DecodeError):
    """A message body that no ``JOB_PAYLOAD_KEYS`` key decrypts, or that is not ours."""

    def __init__(self, reason: str, *, message_id: str = "", redis_message_id: str = ""):
        # DecodeError keeps the raw data; ours is ciphertext, but keep it out of reprs
        # and logs all the same.
        super().__init__(reason, b"", None)
        self.reason = reason
        self.message_id = message_id
        self.redis_message_id = redis_message_id

    def __str__(self) -> str:
        return self.reason


def _dev_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"jobsite-job-payload-key:" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@lru_cache(maxsize=4)
def _fernet_for(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    raw_keys = [key.encode() for key in keys] or [_dev_key(secret_key)]
    fernets = []
    for position, key in enumerate(raw_keys, start=1):
        try:
            fernets.append(Fernet(key))
        except ValueError:
            # Name the position, never the key.
            raise ImproperlyConfigured(
                f"JOB_PAYLOAD_KEYS entry #{position} is not a Fernet key (32 bytes, urlsafe "
                "base64); make one with cryptography.fernet.Fernet.generate_key()."
            ) from None
    return MultiFernet(fernets)


def payload_fernet() -> MultiFernet:
    """The ``MultiFernet`` for the configured keys (cached per key set)."""
    return _fernet_for(tuple(settings.JOB_PAYLOAD_KEYS), settings.SECRET_KEY)


def encrypt_json(value: Any) -> str:
    """Encrypt a JSON-serialisable value; returns the Fernet token as text."""
    plaintext = json.dumps(value, separators=(",", ":")).encode()
    return payload_fernet().encrypt(plaintext).decode("ascii")


def decrypt_json(token: str) -> Any:
    """Decrypt a value made by :func:`encrypt_json`.

    Raises:
      cryptography.fernet.InvalidToken: no configured key decrypts it.
    """
    return json.loads(payload_fernet().decrypt(token.encode("ascii")))


def envelope_ids(data: bytes) -> tuple[str, str]:
    """The (message id, Redis message id) in a body's clear header; empty when absent.

    A plain-JSON body (queued before encryption was turned on) yields its ids too, so it
    can be dead-lettered rather than left in flight; it is never run.
    """
    if not data.startswith(PREFIX):
        try:
            fields = json.loads(data)
            return str(fields["message_id"]), str(fields["options"]["redis_message_id"])
        except (ValueError, KeyError, TypeError):
            return "", ""
    header, _, _ = data[len(PREFIX):].partition(b":")
    message_id, _, redis_message_id = header.decode("ascii", "replace").partition(".")
    return message_id, redis_message_id


class EncryptedJSONEncoder(Encoder):
    """Dramatiq encoder: JSON, then one Fernet encryption per message.

    Set with ``DRAMATIQ_ENCODER = "jobs.encryption.EncryptedJSONEncoder"``.
    """

    def encode(self, data: MessageData) -> bytes:
        plaintext = json.dumps(data, separators=(",", ":")).encode()
        options = data.get("options") or {}
        header = f"{data.get('message_id', '')}.{options.get('redis_message_id', '')}"
        return PREFIX + header.encode("ascii") + b":" + payload_fernet().encrypt(plaintext)

    def decode(self, data: bytes) -> MessageData:
        message_id, redis_message_id = envelope_ids(data)
        if not data.startswith(PREFIX):
            raise UndecryptableMessage(
                "Message body is not an encrypted Jobsite payload (sent without "
                "jobs.encryption.EncryptedJSONEncoder?).",
                message_id=message_id, redis_message_id=redis_message_id,
            )
        _, _, token = data[len(PREFIX):].partition(b":")
        try:
            plaintext = payload_fernet().decrypt(token)
        except InvalidToken:
            raise UndecryptableMessage(
                "Message body could not be decrypted with any JOB_PAYLOAD_KEYS key "
                "(written with a retired key, or altered).",
                message_id=message_id, redis_message_id=redis_message_id,
            ) from None
        return json.loads(plaintext)
