"""Contractor subscriptions: Stripe Billing events applied to the local mirror, and what we
do around them — the features, dunning, the renewal reminder, the end of a cancellation.

**Which user.** A Stripe subscription is ours when its ``metadata.user_id`` names one of
our users (our checkout sets it); anything else is logged and ignored.

**Order.** Every handler locks the subscription's row. The events that carry or change its
state (``customer.subscription.*``, ``invoice.paid``, ``invoice.payment_failed``) apply
only when their Stripe ``created`` is at least the last applied one
(``Subscription.last_event_created``); on a tie (one second) the status further along
:data:`STATUS_RANK` wins, so ``created`` (incomplete) and ``updated`` (active) of one
second end active whatever order they arrive in. An older event changes nothing.

**Features** (``Subscription.features_active``, the ``pro`` badge on the contractor's
profile, see ``payments.models.subscriptions``) are a function of the row
(:func:`features_wanted`), re-applied after every change by :func:`_features_sync`, which
writes the audit entry and the email of each change once, because it acts only on a
change seen under the lock:

- trialing or active: on (until the period end, when the cancellation is scheduled);
- past due: on during the grace period (``SUBSCRIPTION_GRACE_DAYS`` from the first failed
  renewal), off once the daily run suspended it (``suspended_at``);
- canceled: on until ``access_until`` — the end of the paid period when it was canceled in
  good standing, otherwise at once;
- unpaid, incomplete, incomplete_expired, paused: off.

**Dunning.** The first failed renewal (``invoice.payment_failed``, or the status turning
past due, whichever comes first) starts an episode: ``past_due_since``, ``grace_until``
and the first dunning email at once; the daily ``subscription-dunning`` run sends the next
ones on ``SUBSCRIPTION_DUNNING_DAYS`` (calendar days after the first failure in
``BUSINESS_TIME_ZONE``; one email per run however many days it missed), and the first run
after ``grace_until`` suspends the features (email). ``invoice.paid`` (or the status
turning active again) ends the episode and restores them. Stripe's own retries go on
meanwhile: a later failure of the same episode updates the amount due and sends nothing.

**Renewal reminder**, one per period (``reminded_for_period_end``): Stripe's
``invoice.upcoming`` (sent ``N`` days before a renewal, a setting of the Stripe account:
set it to ``SUBSCRIPTION_REMINDER_DAYS``), and the daily ``subscription-renewal-reminders``
run for renewals in the next ``SUBSCRIPTION_REMINDER_DAYS`` not reminded yet (Stripe's
setting off or its event lost). The monthly ``subscription-renewals`` run is the staff
report (counts) and one more reminder pass.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from audit.services import audit_log_record
from marketplace.models import ContractorProfile, User
from payments import stripe_api
from payments.models import Subscription, SubscriptionStatus
from payments.models.subscriptions import PRO_BADGE
from payments.services.dispatch import handles

logger = logging.getLogger("payments")

S = SubscriptionStatus
GOOD_STANDING = (S.TRIALING, S.ACTIVE)
#: How far along a status is, to break a tie between two events of the same second.
STATUS_RANK = {S.INCOMPLETE: 0, S.TRIALING: 1, S.ACTIVE: 1, S.PAUSED: 2, S.PAST_DUE: 3,
               S.UNPAID: 4, S.INCOMPLETE_EXPIRED: 5, S.CANCELED: 5}
#: Subscriptions per transaction-and-job chunk of the daily runs.
CHUNK = 200


class UnknownSubscription(Exception):
    """Not one of ours (no ``metadata.user_id`` naming a user): nothing to do."""


class SubscriptionNotYetKnown(Exception):
    """An invoice of a subscription of ours whose own ``created`` event has not been applied
    yet: the event fails and is retried (its handler runs again later)."""


# --- Reading Stripe's objects ---------------------------------------------------------------

def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _id(value: Any) -> str:
    return value if isinstance(value, str) else (value or {}).get("id", "")


def _first_item(obj: dict[str, Any]) -> dict[str, Any]:
    items = (obj.get("items") or {}).get("data") or []
    return items[0] if items else {}


def subscription_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """Stripe's fields of a subscription object, as the model stores them. Since API
    version 2025-03-31 the period lives on the items; earlier, on the subscription."""
    item = _first_item(obj)
    price = item.get("price") or item.get("plan") or {}
    unit = price.get("unit_amount") if price.get("unit_amount") is not None else price.get(
        "amount")
    period_end = obj.get("current_period_end") or item.get("current_period_end")
    return {"stripe_customer_id": _id(obj.get("customer"))[:255],
            "price_id": str(price.get("id") or "")[:255],
            "amount_cents": int(unit or 0) * int(item.get("quantity") or 1),
            "currency": str(price.get("currency") or obj.get("currency") or "cad").upper()[:3],
            "status": S(obj["status"]),
            "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
            "current_period_end": _moment(period_end),
            "canceled_at": _moment(obj.get("canceled_at"))}


def _invoice_subscription(invoice: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The subscription id of an invoice and the subscription's metadata, where the
    invoice carries them (``parent.subscription_details`` since 2025-03-31, earlier
    ``subscription`` and ``subscription_details``)."""
    details = ((invoice.get("parent") or {}).get("subscription_details")
               or invoice.get("subscription_details") or {})
    subscription_id = _id(details.get("subscription") or invoice.get("subscription"))
    return subscription_id, details.get("metadata") or {}


def _event_created(event: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(event["created"]), UTC)


# --- Rows -----------------------------------------------------------------------------------

def _locked(stripe_subscription_id: str) -> Subscription | None:
    return Subscription.objects.select_for_update().filter(
        stripe_subscription_id=stripe_subscription_id).first()


def subscription_for_object(obj: dict[str, Any]) -> Subscription:
    """The row of subscription object ``obj``, locked; created (with no event applied yet)
    from its ``metadata.user_id`` when it is new.

    Raises:
      UnknownSubscription: no row and no user of ours in its metadata.
    """
    subscription_id = obj["id"]
    row = _locked(subscription_id)
    if row is not None:
        return row
    try:
        user_id = int((obj.get("metadata") or {})["user_id"])
    except (KeyError, TypeError, ValueError):
        raise UnknownSubscription(subscription_id) from None
    if not User.objects.filter(pk=user_id).exists():
        raise UnknownSubscription(subscription_id)
    # Two first events of one subscription at once: one insert wins, both then lock it.
    Subscription.objects.bulk_create(
        [Subscription(stripe_subscription_id=subscription_id, user_id=user_id,
                      **subscription_fields(obj))], ignore_conflicts=True)
    row = _locked(subscription_id)
    if row is None:
        raise UnknownSubscription(subscription_id)
    return row


def subscription_for_invoice(invoice: dict[str, Any]) -> Subscription:
    """The locked row of ``invoice``'s subscription.

    Raises:
      UnknownSubscription: a one-off invoice, or a subscription that is not ours.
      SubscriptionNotYetKnown: ours (its metadata names a user) but not mirrored yet.
    """
    subscription_id, metadata = _invoice_subscription(invoice)
    if not subscription_id:
        raise UnknownSubscription(invoice.get("id") or "")
    row = _locked(subscription_id)
    if row is not None:
        return row
    if metadata.get("user_id"):
        raise SubscriptionNotYetKnown(subscription_id)
    raise UnknownSubscription(subscription_id)


def _applies(row: Subscription, created: datetime, status: S) -> bool:
    """Whether an event created at ``created`` that leaves the row ``status`` is new enough."""
    last = row.last_event_created
    if last is None or created > last:
        return True
    return created == last and STATUS_RANK[status] >= STATUS_RANK[S(row.status)]


def _audit(row: Subscription, action: str, **metadata: Any) -> None:
    audit_log_record(action=f"subscription.{action}", resource=row,
                     metadata={"user_id": row.user_id, "status": row.status, **metadata})


def _email(row: Subscription, kind: str, context: dict[str, Any]) -> None:
    """Queue ``kind`` to the contractor (on commit). An address we cannot mail is logged:
    the state change it tells of stands."""
    from notifications.kinds import EmailContentError
    from notifications.services.sending import send_email

    try:
        send_email(kind=kind, user_id=row.user_id,
                   context={"subscription_id": row.pk, **context})
    except EmailContentError as exc:
        logger.warning("subscription email not sent", extra={
            "subscription_id": row.pk, "kind": kind, "error": type(exc).__name__})


# --- Features -------------------------------------------------------------------------------

def subscription_has_ended(row: Subscription, now: datetime) -> bool:
    """Canceled and past its access, or its scheduled cancellation's period end reached."""
    if row.status == S.CANCELED:  # final in Stripe: once ended, never given back
        return (row.ended_at is not None or row.access_until is None
                or row.access_until <= now)
    return bool(row.cancel_at_period_end and row.current_period_end
                and row.current_period_end <= now)


def features_wanted(row: Subscription, now: datetime) -> bool:
    """Whether the subscription gives its features at ``now`` (the module docstring)."""
    if subscription_has_ended(row, now):
        return False
    if row.status in GOOD_STANDING or row.status == S.CANCELED:
        return True
    if row.status == S.PAST_DUE:
        return row.suspended_at is None
    return False


def contractor_badge_sync(user_id: int) -> None:
    """The ``pro`` badge on user ``user_id``'s profile iff one of their subscriptions gives
    features. Called after the subscription's row is saved; the profile's lock orders two
    subscriptions of one user changing at once, so the last one reads both."""
    profile = ContractorProfile.objects.select_for_update().filter(user_id=user_id).first()
    if profile is None:
        return
    on = Subscription.objects.filter(user_id=user_id, features_active=True).exists()
    badges = [badge for badge in profile.badges or [] if badge != PRO_BADGE]
    if on:
        badges.append(PRO_BADGE)
    if badges != profile.badges:
        profile.badges = badges
        profile.save(update_fields=["badges"])


def _features_sync(row: Subscription, now: datetime) -> None:
    """Apply :func:`features_wanted` to the locked, saved ``row``: the flag, the badge, the
    audit entry and the email of a change (so once per change)."""
    ended = subscription_has_ended(row, now)
    had_features = row.features_active or row.suspended_at is not None
    wanted = features_wanted(row, now)
    fields: list[str] = []
    if ended and row.ended_at is None:
        row.ended_at = now
        fields.append("ended_at")
    if wanted != row.features_active:
        row.features_active = wanted
        fields.append("features_active")
        if wanted and row.ended_at is not None:
            row.ended_at = None  # subscribed again on the same subscription
            fields.append("ended_at")
    if not fields:
        return
    row.save(update_fields=[*set(fields), "updated_at"])
    if "features_active" in fields:
        contractor_badge_sync(row.user_id)
        if wanted:
            _audit(row, "features_granted")
        elif ended:
            _audit(row, "features_revoked", reason="ended")
        else:
            _audit(row, "features_suspended", reason=row.status)
            if row.status in (S.PAST_DUE, S.UNPAID):
                _email(row, "subscription_suspended", {})
    if ended and "ended_at" in fields:
        _audit(row, "ended")
        if had_features:
            end = row.access_until or row.current_period_end or now
            _email(row, "subscription_canceled", {"ended_at": min(end, now).isoformat()})


# --- Dunning --------------------------------------------------------------------------------

def _local_day(moment: datetime):
    return moment.astimezone(zoneinfo.ZoneInfo(settings.BUSINESS_TIME_ZONE)).date()


def dunning_days() -> list[int]:
    """The days after the first failure a dunning email goes out; day 0 is the failure."""
    return [0, *sorted(day for day in settings.SUBSCRIPTION_DUNNING_DAYS if day > 0)]


def _dunning_start(row: Subscription, *, at: datetime, amount_due: int,
                   now: datetime) -> None:
    row.past_due_since = at
    row.grace_until = at + timedelta(days=settings.SUBSCRIPTION_GRACE_DAYS)
    row.dunning_step = 0
    row.amount_due_cents = amount_due
    row.suspended_at = None
    _audit(row, "dunning_started", grace_until=row.grace_until.isoformat())
    _dunning_email_due(row, now)


def _dunning_email_due(row: Subscription, now: datetime) -> bool:
    """Send the dunning email of the latest schedule day reached, unless sent; one email
    however many days were missed. True when one was queued. The caller saves."""
    if row.past_due_since is None or row.suspended_at is not None or (
            row.grace_until and now >= row.grace_until):
        return False
    day = (_local_day(now) - _local_day(row.past_due_since)).days
    reached = sum(1 for scheduled in dunning_days() if scheduled <= day)
    if reached <= row.dunning_step:
        return False
    row.dunning_step = reached
    _audit(row, "dunning_email", step=reached, day=day)
    _email(row, "subscription_payment_failed", {
        "amount_cents": row.amount_due_cents or row.amount_cents, "currency": row.currency,
        "grace_until": row.grace_until.isoformat()})
    return True


def _dunning_clear(row: Subscription) -> None:
    _audit(row, "dunning_cleared", emails=row.dunning_step,
           was_suspended=row.suspended_at is not None)
    row.past_due_since = row.grace_until = row.suspended_at = None
    row.dunning_step = 0
    row.amount_due_cents = 0


# --- Handlers -------------------------------------------------------------------------------

def _ignore_unknown(handler: Callable[[dict[str, Any], Any], None]):
    def wrapped(event: dict[str, Any], row: Any) -> None:
        try:
            handler(event, row)
        except UnknownSubscription:
            logger.info("stripe event for a subscription that is not ours",
                        extra={"stripe_event": row.pk if row else None})
    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def subscription_apply(row: Subscription, obj: dict[str, Any], *, created: datetime,
                       now: datetime) -> bool:
    """Apply subscription object ``obj`` of an event created at ``created`` to the locked
    ``row`` if the event is new enough. True when it was applied."""
    fields = subscription_fields(obj)
    status = fields["status"]
    if not _applies(row, created, status):
        return False
    first = row.last_event_created is None
    before = "" if first else row.status
    was_canceling = row.cancel_at_period_end and not first
    for name, value in fields.items():
        setattr(row, name, value)
    row.last_event_created = created
    if status == S.CANCELED and row.access_until is None:
        # The paid period is kept when it was canceled in good standing, never more.
        end = row.current_period_end
        in_good_standing = before in GOOD_STANDING and row.features_active
        row.access_until = row.ended_at or (
            end if in_good_standing and end and end > now else now)
    if status in GOOD_STANDING and row.past_due_since is not None:
        _dunning_clear(row)  # paid, whichever of invoice.paid and this came first
    elif status == S.PAST_DUE and row.past_due_since is None:
        _dunning_start(row, at=created, amount_due=row.amount_cents, now=now)
    elif status == S.UNPAID and row.suspended_at is None:
        row.suspended_at = now  # Stripe stopped retrying
    row.save()
    if before != status:
        _audit(row, "status_changed", **{"from": before, "to": status})
    if row.cancel_at_period_end != was_canceling and status != S.CANCELED:
        _audit(row, "cancel_scheduled" if row.cancel_at_period_end else "cancel_withdrawn",
               period_end=row.current_period_end.isoformat() if row.current_period_end
               else "")
    _features_sync(row, now)
    return True


@handles("customer.subscription.created", "customer.subscription.updated",
         "customer.subscription.deleted", "customer.subscription.paused",
         "customer.subscription.resumed")
@_ignore_unknown
def subscription_changed(event: dict[str, Any], stored: Any) -> None:
    """Every subscription event carries the whole object: mirror it, if it is new enough."""
    obj = event["data"]["object"]
    row = subscription_for_object(obj)
    if not subscription_apply(row, obj, created=_event_created(event), now=timezone.now()):
        logger.info("older subscription event ignored", extra={
            "stripe_event": stored.pk if stored else None, "subscription_id": row.pk})


@handles("invoice.payment_failed")
@_ignore_unknown
def invoice_payment_failed(event: dict[str, Any], stored: Any) -> None:
    """A renewal failed: past due; the first failure of an episode starts dunning."""
    invoice = event["data"]["object"]
    row = subscription_for_invoice(invoice)
    created, now = _event_created(event), timezone.now()
    if row.status in (S.INCOMPLETE, S.INCOMPLETE_EXPIRED, S.CANCELED):
        return  # the first payment of a new subscription, or one that is over: no dunning
    if not _applies(row, created, S.PAST_DUE):
        return
    row.last_event_created = created
    before = row.status
    if row.status in GOOD_STANDING:
        row.status = S.PAST_DUE  # as Stripe does; its own updated event follows
    amount_due = int(invoice.get("amount_due") or 0)
    if row.past_due_since is None:
        _dunning_start(row, at=created, amount_due=amount_due, now=now)
    else:
        row.amount_due_cents = amount_due  # Stripe's retry of the same episode
    row.save()
    if before != row.status:
        _audit(row, "status_changed", **{"from": before, "to": row.status})
    _features_sync(row, now)


@handles("invoice.paid")
@_ignore_unknown
def invoice_paid(event: dict[str, Any], stored: Any) -> None:
    """A renewal (or the first invoice) paid: dunning over, features on."""
    row = subscription_for_invoice(event["data"]["object"])
    created, now = _event_created(event), timezone.now()
    if row.status == S.CANCELED or not _applies(row, created, S.ACTIVE):
        return
    row.last_event_created = created
    before = row.status
    if row.status in (S.PAST_DUE, S.UNPAID, S.INCOMPLETE):
        row.status = S.ACTIVE  # as Stripe does on payment
    if row.past_due_since is not None:
        _dunning_clear(row)
    row.save()
    if before != row.status:
        _audit(row, "status_changed", **{"from": before, "to": row.status})
    _features_sync(row, now)


@handles("invoice.upcoming")
def invoice_upcoming(event: dict[str, Any], stored: Any) -> None:
    """Stripe's notice of a renewal a few days ahead: the reminder, once per period. It
    changes no state, so its age does not matter; an unknown subscription is left to the
    daily reminder run."""
    invoice = event["data"]["object"]
    try:
        row = subscription_for_invoice(invoice)
    except (UnknownSubscription, SubscriptionNotYetKnown):
        return
    lines = (invoice.get("lines") or {}).get("data") or []
    renews_at = _moment(((lines[0] if lines else {}).get("period") or {}).get("start"))
    subscription_renewal_remind(row, renews_at=renews_at or row.current_period_end,
                                amount_cents=int(invoice.get("amount_due") or 0),
                                now=timezone.now())


# --- Renewal reminders ----------------------------------------------------------------------

def subscription_renewal_remind(row: Subscription, *, renews_at: datetime | None,
                                amount_cents: int, now: datetime) -> bool:
    """Email the renewal reminder of the locked ``row`` for the renewal at ``renews_at``,
    unless it was sent for that renewal or nothing renews. True when it was queued."""
    if (renews_at is None or renews_at <= now or row.status not in GOOD_STANDING
            or row.cancel_at_period_end or row.reminded_for_period_end == renews_at):
        return False
    row.reminded_for_period_end = renews_at
    row.save(update_fields=["reminded_for_period_end", "updated_at"])
    _email(row, "subscription_renewal_reminder", {
        "amount_cents": amount_cents or row.amount_cents, "currency": row.currency,
        "renews_at": renews_at.isoformat()})
    return True


def _due_for_reminder(now: datetime) -> Q:
    return (Q(status__in=GOOD_STANDING, cancel_at_period_end=False, current_period_end__gt=now,
              current_period_end__lte=now + timedelta(days=settings.SUBSCRIPTION_REMINDER_DAYS))
            & (Q(reminded_for_period_end__isnull=True)
               | ~Q(reminded_for_period_end=F("current_period_end"))))


def subscription_renewal_reminders_send(*, now: datetime | None = None,
                                        after_id: int = 0) -> tuple[int, int | None]:
    """One chunk of the reminders due (renewals within ``SUBSCRIPTION_REMINDER_DAYS`` not
    reminded), each decided again under its lock. Returns (sent, the last id when there may
    be more)."""
    now = now or timezone.now()
    ids = list(Subscription.objects.filter(_due_for_reminder(now), pk__gt=after_id)
               .order_by("pk").values_list("pk", flat=True)[:CHUNK])
    sent = 0
    for pk in ids:
        with transaction.atomic():
            row = Subscription.objects.select_for_update().filter(pk=pk).first()
            if row is not None:
                sent += subscription_renewal_remind(
                    row, renews_at=row.current_period_end, amount_cents=row.amount_cents,
                    now=now)
    return sent, (ids[-1] if len(ids) == CHUNK else None)


# --- The daily run: dunning, suspension, the end of cancelled periods -----------------------

def _due_for_daily(now: datetime) -> Q:
    return (Q(status=S.PAST_DUE, past_due_since__isnull=False, suspended_at__isnull=True)
            | Q(ended_at__isnull=True, status=S.CANCELED, access_until__lte=now)
            | Q(ended_at__isnull=True, cancel_at_period_end=True, current_period_end__lte=now))


def subscription_daily_check(*, subscription_id: int, now: datetime) -> None:
    """The day's work for one subscription under its lock: the dunning email due, the
    suspension once the grace period is over, the features of an ended period revoked.
    A second run the same day finds it done."""
    with transaction.atomic():
        row = Subscription.objects.select_for_update().filter(pk=subscription_id).first()
        if row is None:
            return
        if (row.status == S.PAST_DUE and row.past_due_since is not None
                and row.suspended_at is None):
            if row.grace_until is not None and now >= row.grace_until:
                row.suspended_at = now
                _audit(row, "suspended", emails=row.dunning_step)
            else:
                _dunning_email_due(row, now)
            row.save()
        _features_sync(row, now)


def subscriptions_daily_run(*, now: datetime | None = None, after_id: int = 0) -> int | None:
    """One chunk of the daily run. Returns the last id when there may be more."""
    now = now or timezone.now()
    ids = list(Subscription.objects.filter(_due_for_daily(now), pk__gt=after_id)
               .order_by("pk").values_list("pk", flat=True)[:CHUNK])
    for pk in ids:
        subscription_daily_check(subscription_id=pk, now=now)
    return ids[-1] if len(ids) == CHUNK else None


# --- The contractor's own page ---------------------------------------------------------------

def subscription_portal_url(*, user_id: int, return_url: str) -> str | None:
    """Where the contractor manages their subscription (the link in every subscription
    email): a Stripe customer-portal session for the customer of their latest
    subscription, or ``None`` when they have none.

    Raises ``StripeUnavailable`` / ``StripeRefused`` (``payments.stripe_api``). The
    idempotency key names the subscription and the minute: a double click within it gets
    the same session, never a random key.
    """
    row = (Subscription.objects.filter(user_id=user_id).exclude(stripe_customer_id="")
           .order_by("-created_at", "-pk").first())
    if row is None:
        return None
    minute = int(timezone.now().timestamp() // 60)
    session = stripe_api.billing_portal_session_create(
        customer_id=row.stripe_customer_id, return_url=return_url,
        key=stripe_api.idempotency_key("billing-portal", row.pk, minute))
    return session["url"]


# --- The monthly staff report -----------------------------------------------------------------

def subscriptions_summary(*, now: datetime | None = None) -> dict[str, int]:
    """Counts only: subscriptions by status and by our state, renewals of the next 30 days,
    ends of the last 30."""
    now = now or timezone.now()
    month = timedelta(days=30)
    by_status = dict(Subscription.objects.order_by().values_list("status")
                     .annotate(n=Count("pk")).values_list("status", "n"))
    counts = {f"status_{status}": by_status.get(status, 0) for status in S.values}
    rows = Subscription.objects
    counts.update({
        "features_active": rows.filter(features_active=True).count(),
        "in_dunning": rows.filter(past_due_since__isnull=False,
                                  suspended_at__isnull=True).count(),
        "suspended": rows.filter(suspended_at__isnull=False).count(),
        "cancel_scheduled": rows.filter(cancel_at_period_end=True,
                                        ended_at__isnull=True).count(),
        "renewing_next_30_days": rows.filter(
            status__in=GOOD_STANDING, cancel_at_period_end=False,
            current_period_end__gt=now, current_period_end__lte=now + month).count(),
        "ended_last_30_days": rows.filter(ended_at__gt=now - month).count(),
    })
    return counts


def subscriptions_summary_send(*, now: datetime | None = None) -> int:
    """Email staff the monthly summary (counts only); returns how many recipients."""
    from jobs.alerts import email_staff_for_run

    now = now or timezone.now()
    counts = subscriptions_summary(now=now)
    lines = [f"Contractor subscriptions on {now:%Y-%m-%d %H:%M} UTC:",
             *(f"  {key.replace('_', ' ')}: {value:,}" for key, value in counts.items())]
    # Once per run: a retry of the monthly run does not email the report again.
    return email_staff_for_run(purpose="subscription-renewals",
                               subject="Subscriptions: monthly renewals report",
                               body="\n".join(lines)) or 0
