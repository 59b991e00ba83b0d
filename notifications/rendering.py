"""Render an email of one kind, for one user, in the user's language.

Templates: ``templates/email/<language>/<kind>.subject.txt``, ``<kind>.txt`` and
``<kind>.html``, each extending the language's shared layout (``base.txt``/``base.html``;
the two ``base.html`` only fill in the words of the one HTML layout, ``email/layout.html``).
The HTML is autoescaped; every user-supplied value is also stripped of control
characters first. The subject is one line, and a line break in it is an error.
"""

import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.template import Context, Engine
from django.utils import dateformat, translation

from marketplace.models import OrderStatus, User
from notifications import tokens
from notifications.extensions import email_values
from notifications.kinds import (
    KINDS,
    EmailContentError,
    header_safe,
    strip_control_characters,
)
from notifications.models import EmailKind, Notification

LANGUAGES = ("en", "fr")
FALLBACK_LANGUAGE = "en"
PARTS = ("subject.txt", "txt", "html")
# What an unresolved variable renders as under the template check (never in real mail).
UNRESOLVED_MARKER = "@@UNRESOLVED:%s@@"
BRAND = "Jobsite"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    headers: dict[str, str] = field(default_factory=dict)


def template_name(kind: str, language: str, part: str) -> str:
    return f"email/{language}/{kind}.{part}"


@lru_cache(maxsize=2)
def email_engine(*, strict: bool = False) -> Engine:
    """The template engine for email. ``strict`` marks unresolved variables visibly."""
    return Engine(
        dirs=[str(settings.BASE_DIR / "templates")],
        string_if_invalid=UNRESOLVED_MARKER if strict else "",
    )


def recipient_language(user: User) -> str:
    language = (user.preferred_language or "").lower()
    return language if language in LANGUAGES else FALLBACK_LANGUAGE


def money_format(amount_cents: int, currency: str, language: str) -> str:
    """``$1,234.56 CAD`` in English, ``1 234,56 $ CAD`` in French (no-break spaces)."""
    units, cents = divmod(amount_cents, 100)
    if language == "fr":
        return f"{units:,}".replace(",", "\u00a0") + f",{cents:02d}\u00a0$ {currency}"
    return f"${units:,}.{cents:02d} {currency}"


#: How a date reads in each language (month names come from Django's translations).
DATE_FORMATS = {"en": "F j, Y", "fr": "j F Y"}


def local_date(moment: str, time_zone: str, language: str, *,
               name: str = "delete_after") -> str:
    """The date of ``moment`` (ISO 8601) on the wall calendar of ``time_zone``, written out
    in ``language`` ("March 2, 2027", "2 mars 2027"). An unknown zone reads as Toronto's.
    ``name`` is the context value's, for the error."""
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("America/Toronto")
    try:
        local = datetime.fromisoformat(moment).astimezone(zone)
    except ValueError:
        raise EmailContentError(f"{name} must be an ISO 8601 date and time.") from None
    with translation.override(language):
        return dateformat.format(local, DATE_FORMATS.get(language, DATE_FORMATS["en"]))


def _kind_context(kind: EmailKind, user: User, context: dict[str, Any], language: str,
                  site: str) -> dict[str, Any]:
    """Links and derived values for ``kind``. Tokens are made here, at send time."""
    order_id = context.get("order_id")
    if kind == EmailKind.WELCOME:
        return {"action_url": f"{site}/"}
    if kind == EmailKind.EMAIL_VERIFICATION:
        return {"action_url": site + tokens.email_verification_path(user),
                "valid_hours": settings.EMAIL_VERIFICATION_MAX_AGE // 3600}
    if kind == EmailKind.PASSWORD_RESET:
        return {"action_url": site + tokens.password_reset_path(user),
                "valid_hours": settings.PASSWORD_RESET_TIMEOUT // 3600}
    if kind == EmailKind.ORDER_STATUS:
        # The model's own label, translated (marketplace/locale/), lower case mid-sentence.
        return {"action_url": f"{site}/orders/{order_id}",
                "status_label": str(OrderStatus(context["status"]).label).lower()}
    if kind == EmailKind.PAYMENT_CONFIRMATION:
        return {"action_url": f"{site}/orders/{order_id}/receipt",
                "amount": money_format(context["amount_cents"], context["currency"], language)}
    if kind == EmailKind.REVIEW_REMINDER:
        return {"action_url": f"{site}/orders/{order_id}/review"}
    if kind == EmailKind.DAILY_DIGEST:
        rows = Notification.objects.filter(
            user_id=user.pk, pk__in=context["notification_ids"]
        ).order_by("-is_important", "-created_at")
        items = [
            {"title": strip_control_characters(row.title),
             "body": strip_control_characters(row.body, multiline=True)[:300],
             "is_important": row.is_important}
            for row in rows
        ]
        return {"action_url": f"{site}/notifications", "items": items}
    if kind == EmailKind.ACCOUNT_DELETION_NOTICE:
        return {"action_url": f"{site}/",
                "deletion_date": local_date(context["delete_after"], user.time_zone,
                                            language)}
    if kind in SUBSCRIPTION_DATES:
        values: dict[str, Any] = {"action_url": f"{site}/account/subscription"}
        name = SUBSCRIPTION_DATES[kind]
        if name:
            values["date"] = local_date(context[name], user.time_zone, language, name=name)
        if "amount_cents" in context:
            values["amount"] = money_format(context["amount_cents"], context["currency"], language)
        return values
    if kind in (EmailKind.DISPUTE_OPENED, EmailKind.DISPUTE_CLOSED):
        due = context.get("evidence_due_by") or ""
        return {"action_url": f"{site}/orders/{order_id}",
                "amount": money_format(context["amount_cents"], context["currency"], language),
                "due_date": local_date(due, user.time_zone, language, name="evidence_due_by")
                if due else ""}
    raise EmailContentError(f"Unknown email kind {kind!r}.")


#: The subscription kinds, each with the context moment its templates show as ``date``.
SUBSCRIPTION_DATES = {EmailKind.SUBSCRIPTION_RENEWAL_REMINDER: "renews_at",
                      EmailKind.SUBSCRIPTION_PAYMENT_FAILED: "grace_until",
                      EmailKind.SUBSCRIPTION_SUSPENDED: "",
                      EmailKind.SUBSCRIPTION_CANCELED: "ended_at"}


def render_email(*, kind: EmailKind, user: User, context: dict[str, Any],
                 unsubscribe_url: str = "", strict: bool = False,
                 extra_values: dict[str, Any] | None = None) -> RenderedEmail:
    """Render ``kind`` for ``user``. ``context`` must come from ``clean_context``.

    ``unsubscribe_url`` is required for non-transactional kinds: it goes into the footer
    and the one-click ``List-Unsubscribe`` headers. ``strict`` and ``extra_values``
    serve the template check (visible unresolved variables, sample digest items).

    Raises:
      EmailContentError: the rendered subject holds a line break.
    """
    spec = KINDS[kind]
    if not spec.transactional and not unsubscribe_url:
        raise EmailContentError(f"{kind} is not transactional and needs an unsubscribe link.")
    language = recipient_language(user)
    site = settings.SITE_URL.rstrip("/")
    values = {
        "brand": BRAND,
        "site_url": site,
        "language": language,
        "first_name": strip_control_characters(user.first_name or ""),
        "unsubscribe_url": "" if spec.transactional else unsubscribe_url,
        **context,
    }
    engine = email_engine(strict=strict)
    with translation.override(language):
        values.update(_kind_context(kind, user, context, language, site))
        values.update(email_values(kind, context, language))
        values.update(extra_values or {})
        parts = {}
        for part in PARTS:
            template = engine.get_template(template_name(kind, language, part))
            parts[part] = template.render(Context(values, autoescape=part == "html"))
    subject = header_safe(" ".join(parts["subject.txt"].split()), name="subject")
    headers = {}
    if not spec.transactional:
        # RFC 8058 one-click unsubscribe: the mail client POSTs to the link.
        headers["List-Unsubscribe"] = f"<{unsubscribe_url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return RenderedEmail(subject=subject, text=parts["txt"].strip() + "\n",
                         html=parts["html"], headers=headers)


# --- Push ----------------------------------------------------------------------------------

PUSH_PARTS = ("heading", "content")
PUSH_MAX_LENGTH = {"heading": 120, "content": 400}


def push_template_name(kind: str, language: str, part: str) -> str:
    return f"push/{language}/{kind}.{part}.txt"


def push_languages(language: str) -> tuple[str, ...]:
    """The languages a push to a reader of ``language`` carries: English always (OneSignal
    needs it, and shows it to devices in any other language), French for French readers."""
    return ("en", "fr") if language == "fr" else ("en",)


def render_push(*, kind: str, context: dict[str, Any], first_name: str = "",
                languages: tuple[str, ...] = ("en",), strict: bool = False
                ) -> tuple[dict[str, str], dict[str, str]]:
    """``(headings, contents)`` of a push, each keyed by language, one line each.

    ``context`` must come from ``push_clean_context``; ``first_name`` personalises it (empty
    for a campaign, whose one request reaches many users).
    """
    engine = email_engine(strict=strict)
    headings: dict[str, str] = {}
    contents: dict[str, str] = {}
    for language in languages:
        values = {"first_name": strip_control_characters(first_name or ""), **context}
        with translation.override(language):
            if "status" in context:
                values["status_label"] = str(OrderStatus(context["status"]).label).lower()
            if "amount_cents" in context:
                values["amount"] = money_format(context["amount_cents"], context["currency"],
                                          language)
            for part, target in (("heading", headings), ("content", contents)):
                template = engine.get_template(push_template_name(kind, language, part))
                text = " ".join(template.render(Context(values, autoescape=False)).split())
                target[language] = text[:PUSH_MAX_LENGTH[part]]
    return headings, contents
