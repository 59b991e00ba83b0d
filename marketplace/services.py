"""Writes to marketplace records. Views, admin actions, commands and actors call these.

Reviews are written in ``marketplace.reviews``; ratings, badges and visibility are
computed in ``marketplace.ratings``.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import (
    ContractorProfile,
    Order,
    OrderStatus,
    RefreshToken,
    ReviewSubject,
    User,
    UserSession,
)
from marketplace.ratings import rating_recalculate_later
from marketplace.search.index import search_index_profile_changed

#: The profile fields a contractor (or staff for them) edits; the rest (ratings,
#: badges, visibility) is computed by ``marketplace.ratings``.
PROFILE_EDITABLE_FIELDS = frozenset({
    "business_name", "description", "trade_categories", "city", "province", "latitude",
    "longitude"})


def user_sessions_revoke(*, user: User) -> dict[str, int]:
    """End every app session of ``user`` and revoke their refresh tokens (a password was
    reset: whoever held the old one must sign in again). Returns the counts."""
    sessions = UserSession.objects.filter(user=user, is_active=True).update(is_active=False)
    refresh_tokens = RefreshToken.objects.filter(user=user, revoked=False).update(
        revoked=True, is_active=False)
    return {"sessions_revoked": sessions, "refresh_tokens_revoked": refresh_tokens}


@transaction.atomic
def order_accept(*, order: Order, contractor: User) -> Order:
    """``contractor`` takes open ``order``: it becomes accepted, theirs, with the time
    (the fast-responder badge measures creation → acceptance).

    Raises:
      PermissionDenied: ``contractor`` is not an active contractor.
      ValidationError: the order is not open any more (taken, cancelled).
    """
    if not (contractor.is_contractor and contractor.is_active):
        raise PermissionDenied("Only an active contractor can accept an order.")
    order = Order.objects.select_for_update().get(pk=order.pk)
    if order.status != OrderStatus.OPEN:
        raise ValidationError("Only an open order can be accepted.")
    order.status, order.contractor, order.accepted_at = (OrderStatus.ACCEPTED, contractor,
                                                         timezone.now())
    order.save(update_fields=["status", "contractor", "accepted_at", "updated_at"])
    audit_log_record(action="order.accepted", resource=order, actor=contractor)
    return order


@transaction.atomic
def contractor_profile_update(*, profile: ContractorProfile, actor: User | None = None,
                              **changes) -> ContractorProfile:
    """Change fields of ``profile`` (names in :data:`PROFILE_EDITABLE_FIELDS`), audited;
    after commit its search entry is rebuilt and its visibility recalculated (a profile
    without a trade category or a city is hidden), each debounced: a burst of edits, one
    run.

    Raises:
      ValueError: a field that is not editable.
      ValidationError: a value the model refuses; nothing is saved.
    """
    unknown = set(changes) - PROFILE_EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"Not editable profile fields: {sorted(unknown)}")
    for name, value in changes.items():
        setattr(profile, name, value)
    profile.full_clean(exclude=["user"])
    profile.save(update_fields=sorted(changes))
    audit_log_record(action="contractor_profile.updated", resource=profile, actor=actor,
                     metadata={"fields": sorted(changes)})
    search_index_profile_changed(profile_id=profile.pk)
    rating_recalculate_later(subject_id=profile.user_id, role=ReviewSubject.CONTRACTOR)
    return profile
