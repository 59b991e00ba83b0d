"""What the links in account email do: verify an address, finish a password reset."""

from django.db import transaction
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import User
from marketplace.services import user_sessions_revoke
from notifications import tokens


def email_verify(*, token: str) -> User:
    """Mark the address of the user a verification link was sent to as verified.

    Idempotent: a second use of a valid link keeps the first ``email_verified_at`` and
    records nothing more. The address is checked again under the row lock, so a link
    made for an address the user has just changed cannot verify the new one.

    Raises:
      tokens.InvalidToken: the token is malformed, tampered with, expired, or was made
        for an address the user no longer has.
    """
    with transaction.atomic():
        checked = tokens.email_verification_user(token)
        user = User.objects.select_for_update().filter(pk=checked.pk,
                                                       email=checked.email).first()
        if user is None:
            raise tokens.InvalidToken("The verification link is invalid or has expired.")
        if user.email_verified_at is None:
            user.email_verified_at = timezone.now()
            user.save(update_fields=["email_verified_at"])
            audit_log_record(action="auth.email_verified", resource=user, actor=user,
                             metadata={"via": "verification_link"})
    return user


def password_reset_completed(*, user: User) -> dict[str, int]:
    """The side effects of a password reset through the emailed link, once Django's form
    has set the new password: every app session of the user ends and their refresh
    tokens are revoked (whoever held the old password must sign in again), and the reset
    is audited. Returns the counts of what was revoked. Run inside the transaction that
    saved the password."""
    revoked = user_sessions_revoke(user=user)
    audit_log_record(action="auth.password_reset", resource=user, actor=user,
                     metadata={"via": "reset_link", **revoked})
    return revoked
