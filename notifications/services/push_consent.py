"""Push preferences: push on or off, kinds turned off, explicit promotional consent (its
time and source in the audit log), quiet hours."""

import datetime

from django.db import transaction
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import User
from notifications.models import PushKind, PushPreference


def push_preference_update(*, user: User, via: str, enabled: bool | None = None,
                           opt_out: list[str] | None = None, opt_in: list[str] | None = None,
                           promotional_consent: bool | None = None,
                           quiet_start: datetime.time | None = None,
                           quiet_end: datetime.time | None = None) -> PushPreference:
    """Change a user's push preferences in one call; every change is audited, a consent
    change with its time and source (``via``).

    Raises:
      ValueError: an unknown kind.
    """
    for kind in (opt_out or []) + (opt_in or []):
        if kind not in PushKind.values:
            raise ValueError(f"Unknown push kind {kind!r}.")
    with transaction.atomic():
        preference, _ = PushPreference.objects.select_for_update().get_or_create(user=user)
        changes: dict = {}
        if enabled is not None and enabled != preference.enabled:
            preference.enabled = changes["enabled"] = enabled
        kinds = set(preference.opted_out_kinds)
        wanted = (kinds | set(opt_out or [])) - set(opt_in or [])
        if wanted != kinds:
            preference.opted_out_kinds = changes["opted_out_kinds"] = sorted(wanted)
        if promotional_consent is not None and (
                promotional_consent != preference.promotional_consent):
            preference.promotional_consent = changes["promotional_consent"] = (
                promotional_consent)
            preference.promotional_consent_at = timezone.now()
            preference.promotional_consent_source = via[:50]
        for name, value in (("quiet_start", quiet_start), ("quiet_end", quiet_end)):
            if value is not None and value != getattr(preference, name):
                setattr(preference, name, value)
                changes[name] = value.isoformat(timespec="minutes")
        if changes:
            preference.save()
            audit_log_record(action="push.preferences_changed", resource=user, actor=user,
                             metadata={**changes, "via": via})
    return preference


def push_opt_out(*, user: User, via: str, kind: str | None = None) -> PushPreference:
    """One call to stop push: all of it, or one kind."""
    if kind is None:
        return push_preference_update(user=user, via=via, enabled=False)
    return push_preference_update(user=user, via=via, opt_out=[kind])
