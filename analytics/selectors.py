"""The figures of a period, read from the apps that own the records: aggregates computed
by PostgreSQL (one query per subject), never a loop over rows.

Every period is a UTC half-open interval ``[start, end)``; the services pass local days
and months of the business time zone. What each figure counts:

- **new users**: accounts whose ``date_joined`` falls in the period.
- **active users**: accounts that did something in the period, by any record that says
  so: ``User.last_activity_at`` (the app's API) and ``last_login``; an app session
  (``UserSession``) or refresh token created or used; an audit entry they made
  (``AuditLog.actor``: reviews, consent and preference changes, email verification,
  password resets, checkouts); an order they placed; a chat message they sent; a review
  they wrote. ``last_activity_at`` and ``last_login`` keep only the latest time, so
  counted alone they would lose yesterday's users who came back today; the other sources
  are kept per event.
  Both count people by role (``contractor`` when ``is_contractor``, else ``client``) and by
  province (``unknown`` when blank); staff and superusers are not counted.
- **orders**: created (``created_at``), completed (``completed_at``), cancelled (status
  cancelled, dated by ``updated_at``: the order has no cancellation time, and a cancelled
  order is not edited again — retention's anonymisation years later excepted).
- **money** (the payments journal, dated by ``posted_at``, which is never backdated):
  gross revenue = the revenue account's credits of payments settled (before tax, refunds
  and fees); tax = the tax accounts' credits of those payments; refunds = what the refund
  entries paid back (tax included).
- **notifications**: emails handed to the ESP (``EmailLog.sent_at``), pushes OneSignal
  accepted (``PushLog.sent_at``), in-app notifications created.
- **jobs**: per queue, from :func:`jobs.monitoring.stats.performance_summary`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Count, Q, Sum

from audit.models import AuditLog
from jobs.monitoring.stats import QueuePerformance, performance_summary
from marketplace.models import ChatMessage, Order, OrderStatus, RefreshToken, Review, UserSession
from notifications.models import EmailLog, Notification, PushLog
from payments.models import Account, EntryKind, JournalLine

#: An email or push is sent within this long of being logged (retries included): the
#: bound lets the count use the logs' ``created_at`` index instead of reading them all.
SEND_LOOKBACK = timedelta(days=2)
UNKNOWN_PROVINCE = "unknown"
TAX_ACCOUNTS = (Account.GST_HST_PAYABLE, Account.QST_PAYABLE, Account.PST_PAYABLE,
                Account.RST_PAYABLE, Account.TAX_UNALLOCATED)

#: (role, province) → people, as counted by :func:`_people`.
PeopleCounts = dict[tuple[str, str], int]


@dataclass
class PeriodFigures:
    """What happened in ``[start, end)``. People counts are exact here: suppression is
    applied when they are stored (``analytics.services``)."""

    new_users: PeopleCounts = field(default_factory=dict)
    active_users: PeopleCounts = field(default_factory=dict)
    orders_created: int = 0
    orders_completed: int = 0
    orders_cancelled: int = 0
    gross_revenue_cents: int = 0
    tax_collected_cents: int = 0
    refunds_cents: int = 0
    emails_sent: int = 0
    push_sent: int = 0
    in_app_sent: int = 0
    queues: dict[str, QueuePerformance] = field(default_factory=dict)


def _people(id_query: str, params: dict) -> PeopleCounts:
    """Users among the ids ``id_query`` selects (duplicates allowed), by role and province,
    staff left out."""
    users = get_user_model()._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT CASE WHEN u.is_contractor THEN 'contractor' ELSE 'client' END, "
            f"u.province, count(*) FROM {users} u "
            f"WHERE u.id IN ({id_query}) AND NOT u.is_staff AND NOT u.is_superuser "
            f"GROUP BY 1, 2", params)
        return {(role, province or UNKNOWN_PROVINCE): count
                for role, province, count in cursor.fetchall()}


def new_users(*, start: datetime, end: datetime) -> PeopleCounts:
    users = get_user_model()._meta.db_table
    return _people(f"SELECT id FROM {users} WHERE date_joined >= %(start)s "
                   f"AND date_joined < %(end)s", {"start": start, "end": end})


def active_users(*, start: datetime, end: datetime) -> PeopleCounts:
    """Distinct users with any activity record in the period (module docstring)."""
    sources = [
        (get_user_model(), "id", ["last_activity_at", "last_login"]),
        (UserSession, "user_id", ["created_at", "last_activity_at"]),
        (RefreshToken, "user_id", ["created_at", "last_activity_at"]),
        (AuditLog, "actor_id", ["created_at"]),
        (Order, "client_id", ["created_at"]),
        (ChatMessage, "sender_id", ["created_at"]),
        (Review, "author_id", ["created_at"]),
    ]
    # One SELECT per (table, time column): each can use that column's index where it has
    # one; UNION removes the duplicates.
    selects = [f"SELECT {id_column} FROM {model._meta.db_table} "
               f"WHERE {column} >= %(start)s AND {column} < %(end)s"
               for model, id_column, columns in sources for column in columns]
    return _people(" UNION ".join(selects), {"start": start, "end": end})


def order_counts(*, start: datetime, end: datetime) -> dict[str, int]:
    def within(name: str) -> Q:
        return Q(**{f"{name}__gte": start, f"{name}__lt": end})

    return Order.objects.filter(within("created_at") | within("completed_at")
                                | within("updated_at")).aggregate(
        created=Count("id", filter=within("created_at")),
        completed=Count("id", filter=Q(status=OrderStatus.COMPLETED) & within("completed_at")),
        cancelled=Count("id", filter=Q(status=OrderStatus.CANCELLED) & within("updated_at")),
    )


def money(*, start: datetime, end: datetime) -> dict[str, int]:
    sums = JournalLine.objects.filter(entry__posted_at__gte=start,
                                      entry__posted_at__lt=end).aggregate(
        gross=Sum("credit_cents", filter=Q(entry__kind=EntryKind.PAYMENT,
                                           account=Account.REVENUE)),
        tax=Sum("credit_cents", filter=Q(entry__kind=EntryKind.PAYMENT,
                                         account__in=TAX_ACCOUNTS)),
        refunds=Sum("credit_cents", filter=Q(entry__kind=EntryKind.REFUND,
                                             account=Account.STRIPE_BALANCE)),
    )
    return {name: value or 0 for name, value in sums.items()}


def notifications_sent(*, start: datetime, end: datetime) -> dict[str, int]:
    def sent(model) -> int:
        return model.objects.filter(created_at__gte=start - SEND_LOOKBACK, created_at__lt=end,
                                    sent_at__gte=start, sent_at__lt=end).count()

    in_app = Notification.objects.filter(created_at__gte=start, created_at__lt=end).count()
    return {"email": sent(EmailLog), "push": sent(PushLog), "in_app": in_app}


def period_figures(*, start: datetime, end: datetime) -> PeriodFigures:
    """Every figure of ``[start, end)`` (module docstring)."""
    orders = order_counts(start=start, end=end)
    sums = money(start=start, end=end)
    sent = notifications_sent(start=start, end=end)
    return PeriodFigures(
        new_users=new_users(start=start, end=end),
        active_users=active_users(start=start, end=end),
        orders_created=orders["created"], orders_completed=orders["completed"],
        orders_cancelled=orders["cancelled"],
        gross_revenue_cents=sums["gross"], tax_collected_cents=sums["tax"],
        refunds_cents=sums["refunds"],
        emails_sent=sent["email"], push_sent=sent["push"], in_app_sent=sent["in_app"],
        queues=performance_summary(start=start, end=end),
    )
