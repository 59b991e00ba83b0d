"""The counts each cleanup leaves current when it finishes: how many messages, unread,
important, threads; active sessions and the users they belong to; in-app notifications
and history rows. Counts only, stored as :class:`DataStatistic` rows (admin: Retention ›
Data statistics) and added to the run's counts."""

from datetime import datetime, timedelta

from django.apps import apps
from django.db import connection

from retention.models import DataStatistic

#: cleanup → {statistic: (model, SQL expression over t, WHERE over t)}; %(now)s is the run's.
STATISTICS: dict[str, dict[str, tuple[str, str, str]]] = {
    "chat-cleanup": {
        "chat.messages": ("marketplace.chatmessage", "count(*)", "true"),
        "chat.unread": ("marketplace.chatmessage", "count(*)", "NOT t.is_read"),
        "chat.important": ("marketplace.chatmessage", "count(*)", "t.is_important"),
        "chat.threads": ("marketplace.chatmessage", "count(DISTINCT t.thread_id)", "true"),
    },
    "refresh-token-cleanup": {
        "sessions.active": ("marketplace.usersession", "count(*)", "t.is_active AND "
                            "t.expires_at > %(now)s AND t.last_activity_at > %(week_ago)s"),
        "sessions.users_active": ("marketplace.usersession", "count(DISTINCT t.user_id)",
                                  "t.is_active AND t.expires_at > %(now)s AND "
                                  "t.last_activity_at > %(week_ago)s"),
        "sessions.web": ("sessions.session", "count(*)", "t.expire_date > %(now)s"),
        "refresh_tokens.active": ("marketplace.refreshtoken", "count(*)",
                                  "t.is_active AND NOT t.revoked AND t.expires_at > %(now)s"),
    },
    "notification-cleanup": {
        "notifications.in_app": ("notifications.notification", "count(*)", "true"),
        "notifications.unread": ("notifications.notification", "count(*)", "NOT t.is_read"),
    },
    "push-log-cleanup": {"notifications.push_history": ("notifications.pushlog", "count(*)",
                                                        "true")},
    "email-log-cleanup": {"notifications.email_history": ("notifications.emaillog",
                                                          "count(*)", "true")},
}


def statistics_update(cleanup: str, *, now: datetime) -> dict[str, int]:
    """Measure and store the statistics of ``cleanup``; returns them."""
    measured = {}
    params = {"now": now, "week_ago": now - timedelta(days=7)}
    with connection.cursor() as cursor:
        for name, (model, expression, where) in STATISTICS.get(cleanup, {}).items():
            table = apps.get_model(model)._meta.db_table
            cursor.execute(f"SELECT {expression} FROM {table} t WHERE {where}", params)
            measured[name] = cursor.fetchone()[0]
    for name, value in measured.items():
        DataStatistic.objects.update_or_create(name=name, defaults={"value": value,
                                                                    "measured_at": now})
    return measured
