"""What each kind of email is: its consent category and the context values it takes.

A caller passes ``context`` to ``send_email``; :func:`clean_context` checks it against the
kind's fields (types, required keys, no unknown keys), strips control characters from
text and rejects CR/LF in any value that ends up in a header. Templates live under
``templates/email/<language>/<kind>.{subject.txt,txt,html}``.
"""

import unicodedata
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from marketplace.models import OrderStatus
from notifications.models import EmailKind


class Category(StrEnum):
    """Which consent an email needs. Transactional email is always sent."""

    TRANSACTIONAL = "transactional"
    MARKETING = "marketing"
    DIGEST = "digest"


class ContentError(ValueError):
    """The caller's input cannot make a safe message: nothing was recorded or enqueued.

    The message names the field and the problem, never the value (it may be personal).
    """


class EmailContentError(ContentError):
    """The input cannot make a safe email."""


@dataclass(frozen=True)
class Field:
    type: type
    # Rendered into the Subject header: CR/LF would let it forge headers.
    header: bool = False
    multiline: bool = False
    max_length: int = 500
    # When set, the only values accepted.
    choices: tuple[str, ...] = ()
    # An optional value may be left out of the context (the template then lacks it).
    required: bool = True


@dataclass(frozen=True)
class KindSpec:
    kind: EmailKind
    category: Category
    fields: dict[str, Field] = field(default_factory=dict)
    # A context that renders every template branch; the template check uses it.
    sample_context: dict[str, Any] = field(default_factory=dict)

    @property
    def transactional(self) -> bool:
        return self.category == Category.TRANSACTIONAL


_ORDER = Field(int)
_TITLE = Field(str, header=True, max_length=200)

KINDS: dict[EmailKind, KindSpec] = {
    spec.kind: spec
    for spec in [
        KindSpec(EmailKind.WELCOME, Category.MARKETING),
        KindSpec(EmailKind.EMAIL_VERIFICATION, Category.TRANSACTIONAL),
        KindSpec(EmailKind.PASSWORD_RESET, Category.TRANSACTIONAL),
        KindSpec(
            EmailKind.ORDER_STATUS, Category.TRANSACTIONAL,
            {"order_id": _ORDER, "order_title": _TITLE,
             "status": Field(str, max_length=20, choices=tuple(OrderStatus.values))},
            {"order_id": 42, "order_title": "Fix the kitchen sink", "status": "in_progress"},
        ),
        # With ``receipt_id``, the receipt is in the body and attached as a PDF (values and
        # attachment registered by payments: notifications.extensions).
        KindSpec(
            EmailKind.PAYMENT_CONFIRMATION, Category.TRANSACTIONAL,
            {"order_id": _ORDER, "order_title": _TITLE, "amount_cents": Field(int),
             "currency": Field(str, header=True, max_length=3),
             "receipt_id": Field(int, required=False)},
            {"order_id": 42, "order_title": "Fix the kitchen sink", "amount_cents": 11300,
             "currency": "CAD"},
        ),
        KindSpec(
            EmailKind.REVIEW_REMINDER, Category.MARKETING,
            {"order_id": _ORDER, "order_title": _TITLE,
             "contractor_name": Field(str, header=True, max_length=200)},
            {"order_id": 42, "order_title": "Fix the kitchen sink",
             "contractor_name": "Pro Plumbing"},
        ),
        KindSpec(
            EmailKind.DAILY_DIGEST, Category.DIGEST,
            {"notification_ids": Field(list), "unread_count": Field(int)},
            {"notification_ids": [], "unread_count": 2},
        ),
        # Sent by retention (inactive accounts): transactional, so an opt-out of
        # marketing does not stop it. The moment is rendered in the user's time zone.
        KindSpec(
            EmailKind.ACCOUNT_DELETION_NOTICE, Category.TRANSACTIONAL,
            {"delete_after": Field(str, max_length=40)},
            {"delete_after": "2027-03-03T00:00:00+00:00"},
        ),
        # Sent by payments (contractor subscriptions): transactional. Ids, amounts and
        # moments only; the moments are rendered as dates in the user's time zone.
        KindSpec(
            EmailKind.SUBSCRIPTION_RENEWAL_REMINDER, Category.TRANSACTIONAL,
            {"subscription_id": Field(int), "amount_cents": Field(int),
             "currency": Field(str, header=True, max_length=3),
             "renews_at": Field(str, max_length=40)},
            {"subscription_id": 7, "amount_cents": 4_999, "currency": "CAD",
             "renews_at": "2027-03-03T14:00:00+00:00"},
        ),
        KindSpec(
            EmailKind.SUBSCRIPTION_PAYMENT_FAILED, Category.TRANSACTIONAL,
            {"subscription_id": Field(int), "amount_cents": Field(int),
             "currency": Field(str, header=True, max_length=3),
             "grace_until": Field(str, max_length=40)},
            {"subscription_id": 7, "amount_cents": 5_649, "currency": "CAD",
             "grace_until": "2027-03-10T14:00:00+00:00"},
        ),
        KindSpec(
            EmailKind.SUBSCRIPTION_SUSPENDED, Category.TRANSACTIONAL,
            {"subscription_id": Field(int)}, {"subscription_id": 7},
        ),
        KindSpec(
            EmailKind.SUBSCRIPTION_CANCELED, Category.TRANSACTIONAL,
            {"subscription_id": Field(int), "ended_at": Field(str, max_length=40)},
            {"subscription_id": 7, "ended_at": "2027-03-03T14:00:00+00:00"},
        ),
        # To the order's contractor when a client disputes a payment, and when it closes.
        # ``evidence_due_by`` is ISO 8601 or empty (Stripe gave no date).
        KindSpec(
            EmailKind.DISPUTE_OPENED, Category.TRANSACTIONAL,
            {"order_id": _ORDER, "order_title": _TITLE, "amount_cents": Field(int),
             "currency": Field(str, header=True, max_length=3),
             "evidence_due_by": Field(str, max_length=40)},
            {"order_id": 42, "order_title": "Fix the kitchen sink", "amount_cents": 11300,
             "currency": "CAD", "evidence_due_by": "2027-03-03T23:59:59+00:00"},
        ),
        KindSpec(
            EmailKind.DISPUTE_CLOSED, Category.TRANSACTIONAL,
            {"order_id": _ORDER, "order_title": _TITLE, "amount_cents": Field(int),
             "currency": Field(str, header=True, max_length=3),
             "outcome": Field(str, max_length=8, choices=("won", "lost", "closed"))},
            {"order_id": 42, "order_title": "Fix the kitchen sink", "amount_cents": 11300,
             "currency": "CAD", "outcome": "won"},
        ),
    ]
}

_KEEP_IN_MULTILINE = {"\n", "\t"}


def strip_control_characters(value: str, *, multiline: bool = False) -> str:
    """Drop control and format characters (NUL, ESC, bidi overrides, ...).

    ``multiline`` keeps newlines and tabs (normalising CR/LF to LF).
    """
    if multiline:
        value = value.replace("\r\n", "\n").replace("\r", "\n")
    return "".join(
        ch for ch in value
        if (multiline and ch in _KEEP_IN_MULTILINE)
        or unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")
    )


def header_safe(value: str, *, name: str, error: type[ContentError] = EmailContentError
                ) -> str:
    """``value`` if it can go into a header; CR, LF and other line breaks are refused."""
    if any(ch in value for ch in "\r\n\x0b\x0c\x85\u2028\u2029"):
        raise error(f"{name} must not contain line breaks.")
    return strip_control_characters(value)


def clean_context(kind: EmailKind, context: dict[str, Any] | None) -> dict[str, Any]:
    """The kind's context, checked and cleaned. Raises :class:`EmailContentError`."""
    return clean_fields(kind, KINDS[kind].fields, context, error=EmailContentError)


def clean_fields(kind: str, fields: dict[str, Field], context: dict[str, Any] | None, *,
                 error: type[ContentError] = ContentError) -> dict[str, Any]:
    """``context`` checked against ``fields`` (types, required keys, no unknown keys) and
    cleaned; raises ``error`` naming the field, never the value."""
    context = dict(context or {})
    unknown = sorted(set(context) - set(fields))
    if unknown:
        raise error(f"Unknown context for {kind}: {', '.join(unknown)}.")
    cleaned: dict[str, Any] = {}
    for name, rule in fields.items():
        if name not in context:
            if not rule.required:
                continue
            raise error(f"{kind} needs context value {name!r}.")
        value = context[name]
        if rule.type is int and (isinstance(value, bool) or not isinstance(value, int)):
            raise error(f"{name} must be an integer.")
        if rule.type is list:
            if not isinstance(value, list) or not all(
                isinstance(item, int) and not isinstance(item, bool) for item in value
            ):
                raise error(f"{name} must be a list of ids.")
            if len(value) > 100:
                raise error(f"{name} holds at most 100 ids.")
        if rule.type is str:
            if not isinstance(value, str):
                raise error(f"{name} must be text.")
            if rule.header:
                value = header_safe(value, name=name, error=error)
            else:
                value = strip_control_characters(value, multiline=rule.multiline)
            if len(value) > rule.max_length:
                raise error(f"{name} is longer than {rule.max_length} characters.")
            if rule.choices and value not in rule.choices:
                raise error(f"{name} must be one of {', '.join(rule.choices)}.")
        cleaned[name] = value
    return cleaned
