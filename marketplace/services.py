"""Writes to marketplace records. Views, admin actions, commands and actors call these.

Reviews are written in ``marketplace.reviews``; ratings, badges and visibility are
computed in ``marketplace.ratings``.
"""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import Order, OrderStatus, RefreshToken, User, UserSession


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
