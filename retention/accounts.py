"""Inactive accounts (policy ``inactive-accounts``): the notice, its cancellation, the
deletion, and the weekly review for staff.

**Activity.** An account's last activity is the later of ``User.last_activity_at`` (set by
the app's API and the seed; nothing in this code base writes it on login) and
``User.last_login`` (Django sets it at every login, so signing in keeps the account), or
``date_joined`` when it has neither. An account is *inactive* when that is older than the
policy's period (2 years; the cutoff comes from :func:`retention.services.cutoff_for`, so an
earlier cutoff may be asked for, never a younger one). Staff and superusers are never
candidates, nor are accounts already deactivated (``is_active`` false: the email path
refuses them, so they cannot get the notice; how to treat them is still to be decided).

**One run** (:func:`inactive_accounts_run_start`, then :func:`inactive_accounts_run_step`)
walks users by primary key in batches; the actor re-enqueues itself from the run's last id.
Each user is one short transaction under the user's row lock, which re-reads the user's
:func:`outcome` (one SQL expression, which the report and the weekly review count too) and
records the run's counts and last id with it, so a repeated step picks up exactly there:

=========== ================================================================ =============
outcome     when                                                             counted as
=========== ================================================================ =============
notify      inactive, no pending notice, no legal hold: a notice is recorded notified
            (``AccountDeletionNotice``, deletion after 30 days) and the      (or notice_
            email ``account_deletion_notice`` sent (transactional: an opt-   undeliverable)
            out of marketing does not stop it)
cancel      pending notice, and activity after it (or the user became staff) cancelled
held        a legal hold on the user: no notice; a pending one is cancelled  held
            (so a released hold leads to a new notice, 30 days ahead again)
delete      pending notice past ``delete_after``, still inactive, not held   deleted
wait        pending notice, not yet due                                      waiting
=========== ================================================================ =============

A dry run counts ``would_notify``, ``would_cancel``, ``would_delete``, ``held`` and
``waiting`` and changes nothing. A login also cancels a pending notice at once
(``retention.apps``: Django's ``user_logged_in`` signal calls
:func:`deletion_notice_cancel`); the run's own check catches activity by any other path.

A notice that could not be emailed (the address is suppressed or invalid, the hourly limit
is used up) is still recorded, with what ``send_email`` answered in ``email_status``, and
counted ``notice_undeliverable``: the account is deleted after 30 days all the same — the
retention period is what the law asks for, the notice a courtesy that cannot always reach.

**What a deletion does, table by table** (one transaction per account; rows under a legal
hold of their own, ``resource_type``/``resource_id``, are left exactly as they are):

- ``marketplace.user``: the row stays (orders and payments point to it, PROTECT). Email
  becomes ``deleted-<id>@deleted.invalid``; first and last name blank; password unusable;
  ``is_active`` false; province blank; time zone and language back to the defaults;
  ``last_login``, ``last_activity_at``, ``email_verified_at`` cleared; groups and
  permissions removed. ``date_joined`` and ``is_contractor`` stay (no one is identified by
  them).
- ``marketplace.order`` (as client or contractor): kept; the free-text title becomes
  ``Order #<id>``; amounts, tax, province and dates stay (tax records).
- ``payments.payment``: untouched (CRA, 7 years; the table refuses deletes anyway).
- ``marketplace.review`` written by the user: text blanked, rating kept (the contractor's
  average stays right). Reviews *about* the user stay as their authors wrote them (the
  authors' words; the profile they rate is hidden).
- ``marketplace.contractorprofile``: business name "Deleted contractor", city blank,
  coordinates cleared, hidden from search (``is_visible`` false); trades, ratings, badges
  and the province stay.
- ``marketplace.chatmessage`` sent or received: body overwritten, then deleted — except
  messages whose other party is under a legal hold (kept as they are, for the hold).
- ``marketplace.usersession``, ``marketplace.refreshtoken``: deleted.
- ``notifications.device``: deleted (the encrypted push subscription ids go with them).
- ``notifications.emailpreference``, ``notifications.pushpreference``: deleted.
- ``notifications.notification``: title and body overwritten, then deleted.
- ``notifications.emaillog``, ``notifications.pushlog``: deleted (the notice's own log
  with them: the notice keeps its ``email_status``).
- ``notifications.suppression``: kept (a bounced or complaining address is never mailed
  again, CASL; ``retention.policy.EXEMPT``).
- ``audit.auditlog``: kept (ids only; its own 1-year policy).
- ``retention.accountdeletionnotice``: kept, status "deleted", as the record of the notice.

Each deletion writes an audit entry naming the user's id only; each run ends with one of
counts only. Nothing here logs or audits an address or a name.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Concat, Greatest
from django.urls import reverse
from django.utils import timezone

from audit.services import audit_log_record
from jobs.alerts import email_staff_for_run
from marketplace.models import (
    ChatMessage,
    ContractorProfile,
    Order,
    RefreshToken,
    Review,
    UserSession,
)
from marketplace.search.index import search_index_profile_changed
from notifications.kinds import EmailContentError
from notifications.models import (
    Device,
    EmailKind,
    EmailLog,
    EmailPreference,
    EmailStatus,
    Notification,
    PushLog,
    PushPreference,
)
from notifications.services.sending import send_email
from retention.models import AccountDeletionNotice, LegalHold, RetentionRun
from retention.policy import policy
from retention.services import Step, retention_run_close, retention_run_open

logger = logging.getLogger("retention")

POLICY_KEY = "inactive-accounts"
#: How long after the notice the account is deleted (at the first run after that).
NOTICE_PERIOD = timedelta(days=30)
#: Users per batch: each is its own transaction (and, for a notice, an email).
BATCH_SIZE = 200
#: How many user ids the weekly review lists per outcome (the counts are complete).
REVIEW_MAX_IDS = 100
DELETED_BUSINESS_NAME = "Deleted contractor"

Pending = AccountDeletionNotice.Status.PENDING


class Outcome:
    """What a run does with one user (see the module's table)."""

    NONE = "none"
    NOTIFY = "notify"
    CANCEL = "cancel"
    HELD = "held"
    DELETE = "delete"
    WAIT = "wait"


#: The run's count for each outcome, for real and in a dry run.
COUNT_KEYS = {
    False: {Outcome.NOTIFY: "notified", Outcome.CANCEL: "cancelled", Outcome.HELD: "held",
            Outcome.DELETE: "deleted", Outcome.WAIT: "waiting"},
    True: {Outcome.NOTIFY: "would_notify", Outcome.CANCEL: "would_cancel",
           Outcome.HELD: "held", Outcome.DELETE: "would_delete", Outcome.WAIT: "waiting"},
}
UNDELIVERABLE = "notice_undeliverable"


def _users():
    return get_user_model().objects


def with_outcome(users: QuerySet, *, cutoff: datetime, now: datetime) -> QuerySet:
    """``users`` annotated with ``activity`` and the run's ``outcome`` for each, the one
    definition the run, the report and the review share."""
    pending = AccountDeletionNotice.objects.filter(user=OuterRef("pk"), status=Pending)
    hold = LegalHold.objects.filter(user=OuterRef("pk"), released_at__isnull=True)
    staff = Q(is_staff=True) | Q(is_superuser=True)
    no_notice = Q(notice_at__isnull=True)
    return users.annotate(
        activity=Coalesce(Greatest("last_activity_at", "last_login"), "date_joined"),
        notice_at=Subquery(pending.values("notified_at")[:1]),
        notice_due=Subquery(pending.values("delete_after")[:1]),
        held=Exists(hold),
    ).annotate(outcome=Case(
        When(no_notice & (staff | Q(is_active=False) | Q(activity__gte=cutoff)),
             then=Value(Outcome.NONE)),
        When(no_notice & Q(held=True), then=Value(Outcome.HELD)),
        When(no_notice, then=Value(Outcome.NOTIFY)),
        When(staff | Q(activity__gt=F("notice_at")), then=Value(Outcome.CANCEL)),
        When(held=True, then=Value(Outcome.HELD)),
        When(notice_due__lte=now, then=Value(Outcome.DELETE)),
        default=Value(Outcome.WAIT), output_field=CharField()))


def outcome_counts(*, now: datetime | None = None, cutoff: datetime | None = None
                   ) -> dict[str, int]:
    """What a run would do now, per outcome (the dry run's keys): counts only."""
    now = now or timezone.now()
    cutoff = cutoff or now - policy(POLICY_KEY).period
    rows = (with_outcome(_users().all(), cutoff=cutoff, now=now).exclude(outcome=Outcome.NONE)
            .values("outcome").annotate(n=Count("pk")).order_by())
    found = {row["outcome"]: row["n"] for row in rows}
    return {key: found.get(outcome, 0) for outcome, key in COUNT_KEYS[True].items()}


# --- The run -------------------------------------------------------------------------------


def inactive_accounts_run_start(*, dry_run: bool, now: datetime | None = None,
                                cutoff: datetime | None = None) -> RetentionRun:
    """Record a run (counts at zero). Raises :class:`retention.services.RetentionRefused`
    (recorded and audited) when the cutoff is younger than 2 years or the clock is off."""
    counts = dict.fromkeys(COUNT_KEYS[dry_run].values(), 0)
    if not dry_run:
        counts[UNDELIVERABLE] = 0
    return retention_run_open(POLICY_KEY, POLICY_KEY, dry_run=dry_run, counts=counts,
                              now=now, cutoff=cutoff)


def inactive_accounts_run_step(run_id: int, *, max_batches: int = 10,
                               batch_size: int | None = None) -> Step:
    """Handle up to ``max_batches`` batches of users from the run's last id.

    Idempotent: each user's outcome is decided again under its row lock, and the run's
    counts and last id move in that user's transaction."""
    batch_size = batch_size or BATCH_SIZE
    run = RetentionRun.objects.get(pk=run_id)
    if run.policy != POLICY_KEY or run.status != RetentionRun.Status.RUNNING:
        return Step.OVER
    for _ in range(max_batches):
        ids = list(with_outcome(_users().filter(pk__gt=run.last_id), cutoff=run.cutoff,
                                now=run.started_at)
                   .exclude(outcome=Outcome.NONE).order_by("pk")
                   .values_list("pk", flat=True)[:batch_size])
        if not ids:
            retention_run_close(run)
            return Step.FINISHED
        for user_id in ids:
            _user_step(run, user_id)
    return Step.MORE


def _user_step(run: RetentionRun, user_id: int) -> None:
    with transaction.atomic():
        user = (with_outcome(_users().select_for_update(of=("self",)).filter(pk=user_id),
                             cutoff=run.cutoff, now=run.started_at).first())
        counted = None
        if user is not None and user.outcome != Outcome.NONE:
            counted = (COUNT_KEYS[True][user.outcome] if run.dry_run
                       else _apply(run, user))
        if counted:
            run.counts[counted] = run.counts.get(counted, 0) + 1
        run.last_id = user_id
        RetentionRun.objects.filter(pk=run.pk).update(counts=run.counts, last_id=user_id)


def _apply(run: RetentionRun, user) -> str:
    """Do what ``user.outcome`` says (the user's row is locked); returns the count key."""
    keys = COUNT_KEYS[False]
    if user.outcome == Outcome.NOTIFY:
        return _notice_send(user)
    notice = (AccountDeletionNotice.objects.select_for_update()
              .filter(user=user, status=Pending).first())
    if notice is None:  # held, and never notified: nothing to change
        return keys[user.outcome]
    if user.outcome == Outcome.CANCEL:
        reason = (AccountDeletionNotice.CancelReason.NOT_A_CANDIDATE
                  if user.is_staff or user.is_superuser
                  else AccountDeletionNotice.CancelReason.ACTIVITY)
        _cancel(notice, reason=reason)
    elif user.outcome == Outcome.HELD:
        _cancel(notice, reason=AccountDeletionNotice.CancelReason.LEGAL_HOLD)
    elif user.outcome == Outcome.DELETE:
        inactive_account_delete(user=user, notice=notice, run_id=run.pk)
    return keys[user.outcome]


def _notice_send(user) -> str:
    now = timezone.now()
    notice = AccountDeletionNotice.objects.create(user=user, notified_at=now,
                                                  delete_after=now + NOTICE_PERIOD)
    try:
        log = send_email(kind=EmailKind.ACCOUNT_DELETION_NOTICE, user_id=user.pk,
                         context={"delete_after": notice.delete_after.isoformat()})
    except EmailContentError:  # no valid address: the notice is recorded all the same
        notice.email_status = "invalid_address"
    else:
        notice.email_log, notice.email_status = log, log.status
    notice.save(update_fields=["email_log", "email_status"])
    if notice.email_status != EmailStatus.QUEUED:
        return UNDELIVERABLE
    return COUNT_KEYS[False][Outcome.NOTIFY]


def _cancel(notice: AccountDeletionNotice, *, reason: str) -> None:
    notice.status, notice.cancel_reason = AccountDeletionNotice.Status.CANCELLED, reason
    notice.cancelled_at = timezone.now()
    notice.save(update_fields=["status", "cancel_reason", "cancelled_at"])


def deletion_notice_cancel(*, user_id: int) -> bool:
    """The user was active (logged in): their pending notice, if any, is cancelled.
    Returns whether there was one. One indexed UPDATE: it runs at every login."""
    return bool(AccountDeletionNotice.objects.filter(user_id=user_id, status=Pending).update(
        status=AccountDeletionNotice.Status.CANCELLED, cancelled_at=timezone.now(),
        cancel_reason=AccountDeletionNotice.CancelReason.ACTIVITY))


# --- The deletion --------------------------------------------------------------------------


def _unheld(rows: QuerySet) -> QuerySet:
    """``rows`` less those under a legal hold of their own (one record held)."""
    label = rows.model._meta.label_lower
    held = LegalHold.objects.filter(released_at__isnull=True, resource_type=label)
    return rows.exclude(Exists(held.filter(resource_id=Cast(OuterRef("pk"), CharField()))))


def _overwrite_and_delete(rows: QuerySet, **blank: str) -> None:
    """Overwrite the content columns, then delete (the text does not wait for vacuum)."""
    rows = _unheld(rows)
    if blank:
        rows.update(**blank)
    rows.delete()


def inactive_account_delete(*, user, notice: AccountDeletionNotice, run_id: int) -> None:
    """Remove ``user``'s personal data as the module's table says, keep what points to the
    account (orders, payments), close ``notice`` as deleted and audit it (the user's id
    only). Run inside the transaction that locked the user's row."""
    user_id = user.pk
    mine = Q(sender_id=user_id) | Q(recipient_id=user_id)
    held_people = LegalHold.objects.filter(released_at__isnull=True, user__isnull=False)
    _overwrite_and_delete(
        ChatMessage.objects.filter(mine)
        .exclude(sender_id__in=held_people.values("user_id"))
        .exclude(recipient_id__in=held_people.values("user_id")), body="")
    _overwrite_and_delete(PushLog.objects.filter(user_id=user_id))
    _overwrite_and_delete(Notification.objects.filter(user_id=user_id), title="", body="")
    _overwrite_and_delete(EmailLog.objects.filter(user_id=user_id))
    _overwrite_and_delete(Device.objects.filter(user_id=user_id))
    _overwrite_and_delete(RefreshToken.objects.filter(user_id=user_id))
    _overwrite_and_delete(UserSession.objects.filter(user_id=user_id))
    _overwrite_and_delete(EmailPreference.objects.filter(user_id=user_id))
    _overwrite_and_delete(PushPreference.objects.filter(user_id=user_id))
    _unheld(Review.objects.filter(author_id=user_id)).update(text="")
    profiles = _unheld(ContractorProfile.objects.filter(user_id=user_id))
    for profile_id in profiles.values_list("pk", flat=True):
        # Its search entry still holds the old name and description until rebuilt.
        search_index_profile_changed(profile_id=profile_id)
    profiles.update(business_name=DELETED_BUSINESS_NAME, description="", city="",
                    latitude=None, longitude=None, is_visible=False)
    _unheld(Order.objects.filter(Q(client_id=user_id) | Q(contractor_id=user_id))).update(
        title=Concat(Value("Order #"), Cast("pk", CharField()), output_field=CharField()))

    model = type(user)
    user.email = f"deleted-{user_id}@deleted.invalid"
    user.first_name = user.last_name = user.province = ""
    user.time_zone = model._meta.get_field("time_zone").get_default()
    user.preferred_language = model._meta.get_field("preferred_language").get_default()
    user.last_login = user.last_activity_at = user.email_verified_at = None
    user.is_active = False
    user.set_unusable_password()
    user.save(update_fields=["email", "first_name", "last_name", "province", "time_zone",
                             "preferred_language", "last_login", "last_activity_at",
                             "email_verified_at", "is_active", "password"])
    user.groups.clear()
    user.user_permissions.clear()

    notice.status, notice.deleted_at = AccountDeletionNotice.Status.DELETED, timezone.now()
    notice.save(update_fields=["status", "deleted_at"])
    audit_log_record(action="retention.account_deleted", resource=user,
                     metadata={"run_id": run_id}, is_critical=True)
    logger.info("inactive account deleted", extra={"user_id": user_id, "run_id": run_id})


# --- Report and weekly review --------------------------------------------------------------


def inactive_accounts_report(now: datetime | None = None) -> dict:
    """The ``manage.py retention report`` row: what a run would do now (counts only)."""
    now = now or timezone.now()
    cutoff = now - policy(POLICY_KEY).period
    return {"cleanup": POLICY_KEY, "policy": POLICY_KEY, "cutoff": cutoff,
            **outcome_counts(now=now, cutoff=cutoff)}


def inactive_accounts_review(now: datetime | None = None) -> dict:
    """For staff, weekly: what a run would do now (counts, and the user ids to be notified
    or deleted, at most ``REVIEW_MAX_IDS`` each), and what notices did in the last 7 days.
    Ids and counts only."""
    now = now or timezone.now()
    cutoff = now - policy(POLICY_KEY).period
    users = with_outcome(_users().all(), cutoff=cutoff, now=now)

    def ids(outcome: str) -> list[int]:
        return list(users.filter(outcome=outcome).order_by("pk")
                    .values_list("pk", flat=True)[:REVIEW_MAX_IDS])

    week = now - timedelta(days=7)
    notices = AccountDeletionNotice.objects
    return {
        "now": now, "cutoff": cutoff, "counts": outcome_counts(now=now, cutoff=cutoff),
        "to_notify": ids(Outcome.NOTIFY), "to_delete": ids(Outcome.DELETE),
        "last_7_days": {
            "notified": notices.filter(notified_at__gte=week).count(),
            "cancelled": notices.filter(cancelled_at__gte=week).count(),
            "deleted": notices.filter(deleted_at__gte=week).count(),
        },
    }


def inactive_accounts_review_send(now: datetime | None = None) -> int:
    """Email the weekly review to staff (``STAFF_ALERT_EMAILS``); returns how many
    recipients it went to."""
    review = inactive_accounts_review(now)
    link = settings.SITE_URL.rstrip("/") + reverse(
        "admin:retention_accountdeletionnotice_changelist")

    def id_list(ids: list[int], total: int) -> str:
        shown = ", ".join(f"#{i}" for i in ids) or "none"
        return shown + (f" (first {len(ids)} of {total})" if total > len(ids) else "")

    counts = review["counts"]
    lines = [
        f"Inactive accounts (no activity since {review['cutoff']:%Y-%m-%d %H:%M} UTC), "
        f"if the monthly run happened now ({review['now']:%Y-%m-%d %H:%M} UTC):",
        *(f"  {key.replace('_', ' ')}: {value:,}" for key, value in counts.items()),
        "",
        f"Users to be notified: {id_list(review['to_notify'], counts['would_notify'])}",
        f"Users to be deleted: {id_list(review['to_delete'], counts['would_delete'])}",
        "",
        "Notices in the last 7 days: " + ", ".join(
            f"{key} {value:,}" for key, value in review["last_7_days"].items()),
        "",
        "A legal hold (admin > Retention > Legal holds) keeps an account; signing in "
        "cancels its notice.",
        f"Notices: {link}",
    ]
    return email_staff_for_run(purpose="inactive-account-review",
                               subject="Inactive accounts: weekly review",
                               body="\n".join(lines)) or 0
