"""Signed tokens carried by email links.

- Email verification: a ``TimestampSigner`` token over (user id, address) that expires
  after ``EMAIL_VERIFICATION_MAX_AGE`` seconds and stops working when the address changes.
- Password reset: Django's own ``default_token_generator`` (expires after
  ``PASSWORD_RESET_TIMEOUT`` and when the password or last login changes).
- Unsubscribe: a signed (user id, nonce) pair. The nonce changes on every unsubscribe,
  so each link works once.
"""

import hashlib

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from marketplace.models import User

_VERIFY_SALT = "notifications.email-verification"
_UNSUBSCRIBE_SALT = "notifications.unsubscribe"


class InvalidToken(Exception):
    """The token is malformed, tampered with, expired or already used."""


class UsedToken(InvalidToken):
    """A well-signed single-use token that was already used."""


def _address_digest(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()[:16]


def email_verification_token(user: User) -> str:
    return signing.TimestampSigner(salt=_VERIFY_SALT).sign_object(
        {"u": user.pk, "e": _address_digest(user.email)}, compress=True
    )


def email_verification_user(token: str) -> User:
    """The user a verification token was made for. Raises :class:`InvalidToken`."""
    try:
        data = signing.TimestampSigner(salt=_VERIFY_SALT).unsign_object(
            token, max_age=settings.EMAIL_VERIFICATION_MAX_AGE
        )
    except signing.BadSignature as exc:  # SignatureExpired is a subclass
        raise InvalidToken("The verification link is invalid or has expired.") from exc
    # Signed by us, but not necessarily by this code: a payload of another shape is invalid.
    if not isinstance(data, dict) or not isinstance(data.get("u"), int) or isinstance(
            data.get("u"), bool):
        raise InvalidToken("The verification link is invalid or has expired.")
    user = User.objects.filter(pk=data["u"]).first()
    if user is None or _address_digest(user.email) != data.get("e"):
        raise InvalidToken("The verification link is invalid or has expired.")
    return user


def email_verification_path(user: User) -> str:
    """The site path of ``user``'s verification page, token included."""
    return f"{reverse('notifications:verify-email')}?token={email_verification_token(user)}"


def password_reset_path(user: User) -> str:
    """The site path of ``user``'s password-reset page, token included."""
    return reverse("notifications:password-reset-confirm", kwargs={
        "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
        "token": default_token_generator.make_token(user),
    })


def unsubscribe_token(user_id: int, nonce: int) -> str:
    return signing.Signer(salt=_UNSUBSCRIBE_SALT).sign_object({"u": user_id, "n": nonce})


def unsubscribe_token_data(token: str) -> tuple[int, int]:
    """(user id, nonce) of a well-signed unsubscribe token. Raises :class:`InvalidToken`."""
    try:
        data = signing.Signer(salt=_UNSUBSCRIBE_SALT).unsign_object(token)
        return int(data["u"]), int(data["n"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidToken("The unsubscribe link is invalid.") from exc
