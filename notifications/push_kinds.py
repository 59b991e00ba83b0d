"""What each kind of push is: urgent or not, whether it needs promotional consent, the
context it takes and the ids its ``data`` payload carries.

Texts live in ``templates/push/<language>/<kind>.heading.txt`` and ``.content.txt``; the
``notifications.E002`` check renders every one with the kind's sample context.
"""

from dataclasses import dataclass, field
from typing import Any

from marketplace.models import OrderStatus
from notifications.kinds import ContentError, Field, clean_fields
from notifications.models import PushKind


class PushContentError(ContentError):
    """The input cannot make a safe push: nothing was recorded or enqueued."""


@dataclass(frozen=True)
class PushKindSpec:
    kind: PushKind
    # Urgent kinds go now; the others wait for the end of the user's quiet hours.
    urgent: bool
    # Promotional kinds need the user's explicit consent.
    promotional: bool = False
    fields: dict[str, Field] = field(default_factory=dict)
    sample_context: dict[str, Any] = field(default_factory=dict)
    # Context values the push's ``data`` payload carries (ids only: the app fetches the rest).
    data_fields: tuple[str, ...] = ()


_ORDER = Field(int)
_TITLE = Field(str, header=True, max_length=120)
_LINE = Field(str, header=True, max_length=120)

PUSH_KINDS: dict[PushKind, PushKindSpec] = {
    spec.kind: spec
    for spec in [
        PushKindSpec(
            PushKind.ORDER_STATUS, urgent=True,
            fields={"order_id": _ORDER, "order_title": _TITLE,
                    "status": Field(str, max_length=20, choices=tuple(OrderStatus.values))},
            sample_context={"order_id": 42, "order_title": "Fix the kitchen sink",
                            "status": "in_progress"},
            data_fields=("order_id",)),
        PushKindSpec(
            PushKind.NEW_MESSAGE, urgent=True,
            fields={"thread_id": Field(str, max_length=36), "sender_name": _LINE},
            sample_context={"thread_id": "5a1c1a56-0000-4000-8000-00000000a11c",
                            "sender_name": "Pro Plumbing"},
            data_fields=("thread_id",)),
        PushKindSpec(
            PushKind.PAYMENT_CONFIRMATION, urgent=True,
            fields={"order_id": _ORDER, "order_title": _TITLE, "amount_cents": Field(int),
                    "currency": Field(str, header=True, max_length=3)},
            sample_context={"order_id": 42, "order_title": "Fix the kitchen sink",
                            "amount_cents": 11300, "currency": "CAD"},
            data_fields=("order_id",)),
        PushKindSpec(
            PushKind.REVIEW_REQUEST, urgent=False,
            fields={"order_id": _ORDER, "order_title": _TITLE},
            sample_context={"order_id": 42, "order_title": "Fix the kitchen sink"},
            data_fields=("order_id",)),
        PushKindSpec(
            PushKind.PROMOTIONAL, urgent=False, promotional=True,
            fields={"headline_en": _LINE, "headline_fr": _LINE,
                    "message_en": Field(str, max_length=240),
                    "message_fr": Field(str, max_length=240)},
            sample_context={"headline_en": "Spring tune-up", "headline_fr": "Mise au point",
                            "message_en": "Book a furnace check this week.",
                            "message_fr": "Réservez une vérification cette semaine."}),
    ]
}


def push_clean_context(kind: PushKind, context: dict[str, Any] | None) -> dict[str, Any]:
    """The kind's context, checked and cleaned. Raises :class:`PushContentError`."""
    return clean_fields(kind, PUSH_KINDS[kind].fields, context, error=PushContentError)
