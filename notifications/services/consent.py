"""Email consent: preferences (marketing, digest) and the one-click unsubscribe link."""

from django.conf import settings
from django.db import transaction
from django.urls import reverse

from audit.services import audit_log_record
from marketplace.models import User
from notifications import tokens
from notifications.models import EmailPreference


def unsubscribe_url(preference: EmailPreference) -> str:
    token = tokens.unsubscribe_token(preference.user_id, preference.unsubscribe_nonce)
    path = reverse("notifications:unsubscribe", kwargs={"token": token})
    return settings.SITE_URL.rstrip("/") + path


def unsubscribe_link_check(*, token: str) -> None:
    """Whether an unsubscribe link can still be used; changes nothing (for the GET page).

    Raises:
      tokens.UsedToken: it was used already.
      tokens.InvalidToken: it is forged or malformed, or its user is gone.
    """
    user_id, nonce = tokens.unsubscribe_token_data(token)
    current = (EmailPreference.objects.filter(user_id=user_id)
               .values_list("unsubscribe_nonce", flat=True).first())
    if current is None and not User.objects.filter(pk=user_id).exists():
        raise tokens.InvalidToken("The unsubscribe link is invalid.")
    if (current or 0) != nonce:
        raise tokens.UsedToken("The unsubscribe link was already used.")


def email_preference_update(*, user: User, marketing: bool | None = None,
                            digest: bool | None = None, via: str) -> EmailPreference:
    """Change a user's email consent and record the change in the audit log."""
    with transaction.atomic():
        preference, _ = EmailPreference.objects.select_for_update().get_or_create(user=user)
        changes = {}
        if marketing is not None and marketing != preference.marketing:
            preference.marketing = changes["marketing"] = marketing
        if digest is not None and digest != preference.digest:
            preference.digest = changes["digest"] = digest
        if changes:
            preference.save()
            audit_log_record(action="email.consent_changed", resource=user, actor=user,
                             metadata={**changes, "via": via})
    return preference


def email_unsubscribe(*, token: str) -> EmailPreference:
    """Turn off marketing and digest email for the user of a one-click unsubscribe link.

    Each link works once: the preference's nonce moves on, so the same token is refused
    the second time.

    Raises:
      tokens.InvalidToken: the token is forged, malformed or already used.
    """
    user_id, nonce = tokens.unsubscribe_token_data(token)
    with transaction.atomic():
        user = User.objects.filter(pk=user_id).first()
        if user is None:
            raise tokens.InvalidToken("The unsubscribe link is invalid.")
        preference, _ = EmailPreference.objects.select_for_update().get_or_create(user=user)
        if preference.unsubscribe_nonce != nonce:
            raise tokens.UsedToken("The unsubscribe link was already used.")
        preference.unsubscribe_nonce += 1
        preference.save(update_fields=["unsubscribe_nonce", "updated_at"])
        return email_preference_update(user=user, marketing=False, digest=False,
                                       via="unsubscribe_link")
