"""Encryption of job payloads at rest: Dramatiq messages in Redis and failed-job arguments.

Every message body is encrypted with AES-256-GCM (authenticated): a message altered or
written with an unknown key is rejected, never run. Keys come from ``JOB_PAYLOAD_KEYS``
(32 bytes, urlsafe base64, the Fernet key format): the first key encrypts, every key
decrypts, so a key is rotated by putting the new one first and dropping the old one once
queues (and the failed-job list) no longer hold messages written with it. Without keys
(development and tests; production refuses to start without them) a key is derived from
``SECRET_KEY``.

A body is ``jse2:<message id>.<redis message id>:<key id><nonce><ciphertext and tag>``:
raw bytes after the second colon (4-byte key id, 12-byte random nonce), the clear header
bound to the ciphertext as associated data, so ids cannot be swapped between bodies. The
two ids are random UUIDs, not personal data; they are in clear so that a body which cannot
be decrypted can still be dead-lettered and named in the failed-job list (see
``jobs.broker``). AES-GCM replaced Fernet (``jse1:``, AES-128-CBC + HMAC + base64) because
Fernet cost ~65 µs per encryption and per decryption, more than a whole no-op job's
middleware (see README "Performance"); ``jse1:`` bodies queued before the change still
decrypt. Failed-job arguments (:func:`encrypt_json`, rare) stay Fernet tokens in text.
"""

import base64
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from dramatiq.encoder import Encoder, MessageData
from dramatiq.errors import DecodeError

PREFIX = b"jse2:"
# Bodies written before AES-GCM (Fernet tokens); decrypted, never written.
FERNET_PREFIX = b"jse1:"
_PREFIXES = (PREFIX, FERNET_PREFIX)
KEY_ID_SIZE = 4
NONCE_SIZE = 12


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


@dataclass(frozen=True)
class PayloadKeys:
    """AES-GCM ciphers for the configured keys: the first encrypts, all decrypt."""

    encrypt_id: bytes
    encrypt_cipher: AESGCM
    by_id: dict[bytes, tuple[AESGCM, ...]]


@lru_cache(maxsize=4)
def _aead_for(keys: tuple[str, ...], secret_key: str) -> PayloadKeys:
    # Validates every key (the same clear error as Fernet's) before any is used.
    _fernet_for(keys, secret_key)
    raw_keys = [key.encode() for key in keys] or [_dev_key(secret_key)]
    by_id: dict[bytes, list[AESGCM]] = {}
    ciphers = []
    for key in raw_keys:
        # A key of its own for AES-GCM (not the Fernet halves), derived from the configured
        # one; its id is a digest of the derived key, never the key.
        aead_key = hashlib.sha256(b"jobsite-job-payload-aesgcm:" + base64.urlsafe_b64decode(key)
                                  ).digest()
        key_id = hashlib.sha256(b"key-id:" + aead_key).digest()[:KEY_ID_SIZE]
        cipher = AESGCM(aead_key)
        ciphers.append((key_id, cipher))
        by_id.setdefault(key_id, []).append(cipher)
    return PayloadKeys(encrypt_id=ciphers[0][0], encrypt_cipher=ciphers[0][1],
                       by_id={k: tuple(v) for k, v in by_id.items()})


def payload_keys() -> PayloadKeys:
    """The AES-GCM ciphers for the configured keys (cached per key set)."""
    return _aead_for(tuple(settings.JOB_PAYLOAD_KEYS), settings.SECRET_KEY)


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
    if not data.startswith(_PREFIXES):
        try:
            fields = json.loads(data)
            return str(fields["message_id"]), str(fields["options"]["redis_message_id"])
        except (ValueError, KeyError, TypeError):
            return "", ""
    header, _, _ = data[len(PREFIX):].partition(b":")
    message_id, _, redis_message_id = header.decode("ascii", "replace").partition(".")
    return message_id, redis_message_id


class EncryptedJSONEncoder(Encoder):
    """Dramatiq encoder: JSON, then one AES-256-GCM encryption per message.

    Set with ``DRAMATIQ_ENCODER = "jobs.encryption.EncryptedJSONEncoder"``.
    """

    def encode(self, data: MessageData) -> bytes:
        plaintext = json.dumps(data, separators=(",", ":")).encode()
        options = data.get("options") or {}
        header = PREFIX + (
            f"{data.get('message_id', '')}.{options.get('redis_message_id', '')}:"
        ).encode("ascii")
        keys = payload_keys()
        nonce = os.urandom(NONCE_SIZE)
        return b"".join((header, keys.encrypt_id, nonce,
                         keys.encrypt_cipher.encrypt(nonce, plaintext, header)))

    def decode(self, data: bytes) -> MessageData:
        message_id, redis_message_id = envelope_ids(data)
        if not data.startswith(_PREFIXES):
            raise UndecryptableMessage(
                "Message body is not an encrypted Jobsite payload (sent without "
                "jobs.encryption.EncryptedJSONEncoder?).",
                message_id=message_id, redis_message_id=redis_message_id,
            )
        header_end = data.find(b":", len(PREFIX)) + 1
        try:
            if not header_end:
                raise InvalidTag()  # no header: truncated or not ours
            if data.startswith(PREFIX):
                plaintext = _aead_decrypt(data[:header_end], data[header_end:])
            else:
                plaintext = payload_fernet().decrypt(data[header_end:])
        except (InvalidTag, InvalidToken):
            raise UndecryptableMessage(
                "Message body could not be decrypted with any JOB_PAYLOAD_KEYS key "
                "(written with a retired key, or altered).",
                message_id=message_id, redis_message_id=redis_message_id,
            ) from None
        return json.loads(plaintext)


def _aead_decrypt(header: bytes, sealed: bytes) -> bytes:
    """Decrypt ``<key id><nonce><ciphertext>`` made under ``header``.

    Raises:
      InvalidTag: no configured key with that id decrypts it (or it was altered).
    """
    key_id = sealed[:KEY_ID_SIZE]
    nonce = sealed[KEY_ID_SIZE:KEY_ID_SIZE + NONCE_SIZE]
    ciphertext = sealed[KEY_ID_SIZE + NONCE_SIZE:]
    # Key ids are 4 bytes of a digest: two configured keys may share one, so try each.
    for cipher in payload_keys().by_id.get(key_id, ()):
        try:
            return cipher.decrypt(nonce, ciphertext, header)
        except InvalidTag:
            continue
    raise InvalidTag()
