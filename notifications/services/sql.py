"""The email and push hot paths in plain SQL: the recipient check, the queued row, the
claim, the end.

Measured: building these queries through the ORM cost more CPU than rendering and sending
the email (``send_email`` 6.7 → 3.0 ms, ``email_deliver`` 9.0 → 4.4 ms; README
"Performance"), and the same held for push. Each statement names its columns in a tuple
below, and ``tests/notifications/test_sql_columns.py`` ties those tuples to the models: a
new field the INSERT does not set, or a renamed column, fails the suite instead of failing
in production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.db import connection
from django.utils import timezone

from marketplace.models import User
from notifications.models import (
    Device,
    EmailLog,
    EmailPreference,
    EmailStatus,
    Notification,
    PushLog,
    PushPreference,
    PushStatus,
    Suppression,
)

# --- Column lists (checked against the models by the test) ---------------------------

#: Columns ``send_email`` reads of the recipient, then of their preference.
RECIPIENT_USER_COLUMNS = ("id", "email", "first_name", "preferred_language")
PREFERENCE_COLUMNS = ("id", "marketing", "digest", "unsubscribe_nonce")
#: Every EmailLog column a queued row is inserted with. The others are nullable.
INSERT_COLUMNS = ("kind", "user_id", "status", "context", "language", "message_id",
                  "claimed_by", "esp_message_id", "attempts", "last_error", "created_at",
                  "updated_at")
#: What the claim writes, returns of the row, and reads of its user (to render the email).
CLAIM_SETS = ("status", "attempts", "last_attempt_at", "updated_at", "claimed_by",
              "message_id")
CLAIM_RETURNING = ("id", "kind", "context", "language", "attempts", "message_id",
                   "created_at", "user_id", "last_error")
CLAIM_USER_COLUMNS = ("id", "email", "first_name", "last_name", "preferred_language",
                      "password", "last_login", "time_zone")
#: What recording an outcome writes.
FINISH_COLUMNS = ("status", "last_error", "sent_at", "esp_message_id", "updated_at")


def _columns(alias: str, columns: tuple[str, ...]) -> str:
    return ", ".join(f"{alias}.{column}" for column in columns)


@lru_cache(maxsize=1)
def _statements() -> dict[str, str]:
    """The statements, with table names from the models (built once, on first use)."""
    tables = {"log": EmailLog._meta.db_table, "user": User._meta.db_table,
              "preference": EmailPreference._meta.db_table,
              "suppression": Suppression._meta.db_table}
    suppressed = (f"EXISTS (SELECT 1 FROM {tables['suppression']} s "
                  "WHERE s.email = lower(u.email))")
    return {
        "recipient": (
            f"SELECT {_columns('u', RECIPIENT_USER_COLUMNS)}, "
            f"{_columns('p', PREFERENCE_COLUMNS)}, {suppressed} "
            f"FROM {tables['user']} u LEFT JOIN {tables['preference']} p "
            "ON p.user_id = u.id WHERE u.id = %s AND u.is_active"
        ),
        "insert": (
            f"INSERT INTO {tables['log']} ({', '.join(INSERT_COLUMNS)}) "
            "VALUES (%s, %s, %s, %s::jsonb, %s, %s, '', '', 0, '', %s, %s) RETURNING id"
        ),
        # Claim the row and read what rendering needs, in one round trip. Claimable:
        # queued; or sending, when the claim is stale, belongs to this same message (its
        # earlier attempt ended without recording an outcome: a retry, or a redelivery
        # after its worker died), or belongs to the worker being taken over.
        "claim": (
            f"WITH claimed AS (UPDATE {tables['log']} SET status = %(sending)s, "
            "attempts = attempts + 1, last_attempt_at = %(now)s, updated_at = %(now)s, "
            "claimed_by = %(worker)s, "
            "message_id = CASE WHEN %(message_id)s = '' THEN message_id "
            "ELSE %(message_id)s END "
            "WHERE id = %(id)s AND (status = %(queued)s "
            "OR (status = %(sending)s AND (last_attempt_at < %(stale)s "
            "OR (%(message_id)s <> '' AND message_id = %(message_id)s) "
            "OR (%(takeover)s <> '' AND claimed_by = %(takeover)s)))) "
            f"RETURNING {', '.join(CLAIM_RETURNING)}) "
            f"SELECT {_columns('c', CLAIM_RETURNING)}, {_columns('u', CLAIM_USER_COLUMNS)}, "
            f"{_columns('p', PREFERENCE_COLUMNS)}, {suppressed} "
            f"FROM claimed c JOIN {tables['user']} u ON u.id = c.user_id "
            f"LEFT JOIN {tables['preference']} p ON p.user_id = c.user_id"
        ),
        "finish": (
            f"UPDATE {tables['log']} SET "
            + ", ".join(f"{column} = %s" for column in FINISH_COLUMNS) + " WHERE id = %s"
        ),
    }


# --- Statements ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    user: User
    preference: EmailPreference  # an unsaved default (opted in) when the user has none
    suppressed: bool


def _preference(user: User, values: tuple) -> EmailPreference:
    pref_id, marketing, digest, nonce = values
    if pref_id is None:
        return EmailPreference(user=user)  # never chose: opted in
    return EmailPreference(id=pref_id, user=user, marketing=marketing, digest=digest,
                           unsubscribe_nonce=nonce)


def recipient(user_id: int) -> Recipient | None:
    """The active user ``user_id`` with their consent and suppression status."""
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        return None
    with connection.cursor() as cursor:
        cursor.execute(_statements()["recipient"], [user_id])
        row = cursor.fetchone()
    if row is None:
        return None
    size = len(RECIPIENT_USER_COLUMNS)
    user = User(**dict(zip(RECIPIENT_USER_COLUMNS, row[:size], strict=True)))
    user._state.adding = False
    preference = _preference(user, row[size:size + len(PREFERENCE_COLUMNS)])
    return Recipient(user=user, preference=preference, suppressed=row[-1])


def email_log_insert_queued(log: EmailLog) -> None:
    """INSERT ``log`` as a queued row, with the message id it will be sent under
    (``log.message_id``); sets its pk."""
    with connection.cursor() as cursor:
        cursor.execute(_statements()["insert"],
                       [log.kind, log.user_id, EmailStatus.QUEUED.value,
                        json.dumps(log.context), log.language, log.message_id,
                        log.created_at, log.created_at])
        log.pk = cursor.fetchone()[0]
    log.status = EmailStatus.QUEUED
    log._state.adding = False


def email_log_claim(email_log_id: int, *, message_id: str, stale_before: datetime,
                    worker: str = "", takeover: str = "") -> EmailLog | None:
    """Claim the row for ``worker`` (a broker id); ``None`` when it is not claimable (see
    the statement). ``takeover`` names a dead worker whose claim may be taken.

    Returns the row with its ``user``, and ``preference`` and ``suppressed`` attributes.
    """
    now = timezone.now()
    params = {"sending": EmailStatus.SENDING.value, "queued": EmailStatus.QUEUED.value,
              "now": now, "stale": stale_before, "message_id": message_id,
              "id": email_log_id, "worker": worker, "takeover": takeover}
    with connection.cursor() as cursor:
        cursor.execute(_statements()["claim"], params)
        row = cursor.fetchone()
    if row is None:
        return None
    claimed = dict(zip(CLAIM_RETURNING, row[:len(CLAIM_RETURNING)], strict=True))
    offset = len(CLAIM_RETURNING)
    user = User(**dict(zip(CLAIM_USER_COLUMNS, row[offset:offset + len(CLAIM_USER_COLUMNS)],
                           strict=True)))
    user._state.adding = False
    offset += len(CLAIM_USER_COLUMNS)
    context = claimed["context"]
    log = EmailLog(
        id=claimed["id"], kind=claimed["kind"], user=user, status=EmailStatus.SENDING,
        context=json_value(context),
        language=claimed["language"], attempts=claimed["attempts"],
        message_id=claimed["message_id"], created_at=claimed["created_at"],
        last_attempt_at=now, last_error=claimed["last_error"],
    )
    log._state.adding = False
    log.preference = _preference(user, row[offset:offset + len(PREFERENCE_COLUMNS)])
    log.suppressed = row[-1]
    return log


def email_log_finish(log: EmailLog) -> None:
    """Write ``log``'s outcome (status, error, sent time, ESP id) to its row."""
    with connection.cursor() as cursor:
        cursor.execute(_statements()["finish"],
                       [log.status, log.last_error, log.sent_at, log.esp_message_id,
                        timezone.now(), log.pk])


# --- Push ------------------------------------------------------------------------------

#: Columns ``send_push`` reads of the recipient, then of their push preference.
PUSH_RECIPIENT_USER_COLUMNS = ("id", "first_name", "preferred_language", "time_zone")
PUSH_PREFERENCE_COLUMNS = ("id", "enabled", "opted_out_kinds", "promotional_consent",
                           "quiet_start", "quiet_end")
#: The in-app notification a push leaves, inserted in the same statement as its PushLog.
NOTIFICATION_INSERT_COLUMNS = ("user_id", "kind", "title", "body", "is_read", "is_important",
                               "created_at")
#: The PushLog columns a new row is inserted with (the others are nullable campaign links
#: and attempt times).
PUSH_INSERT_COLUMNS = ("kind", "user_id", "status", "context", "language", "message_id",
                       "device_id", "notification_id", "provider_id", "reason", "attempts",
                       "send_at", "created_at", "updated_at")
#: What the claim writes and returns of the row (the user's first name, preference and
#: active devices come with it, and the text of its in-app notification: the push's own
#: text in the reader's language, rendered once).
PUSH_CLAIM_SETS = ("status", "attempts", "last_attempt_at", "updated_at", "message_id")
PUSH_CLAIM_RETURNING = ("id", "kind", "user_id", "context", "language", "attempts",
                        "message_id", "device_id", "notification_id", "send_at",
                        "created_at")
#: What recording an outcome writes.
PUSH_FINISH_COLUMNS = ("status", "reason", "provider_id", "sent_at", "updated_at")


#: Evaluated in a statement run in autocommit, this makes its commit asynchronous: it
#: returns before the WAL reaches the disk. Used for a push's claim and outcome only. A
#: PostgreSQL crash may lose the last fraction of a second of them; the row is then
#: unfinished again and the re-drive sends it once more under the same OneSignal
#: idempotency key, which OneSignal answers without notifying twice. The row itself is
#: inserted with an ordinary (synchronous) commit: it is the record that the push is owed.
#: Inside a caller's transaction it would apply to the whole transaction: there, the
#: statements commit as usual.
ASYNC_COMMIT = "set_config('synchronous_commit', 'off', true)"


@lru_cache(maxsize=2)
def _push_statements(async_commit: bool = False) -> dict[str, str]:
    commit = ASYNC_COMMIT if async_commit else "NULL"
    tables = {"log": PushLog._meta.db_table, "user": User._meta.db_table,
              "preference": PushPreference._meta.db_table,
              "device": Device._meta.db_table, "notification": Notification._meta.db_table}
    # The user's active devices (one of them, when the push is for one device).
    devices = (f"SELECT d.subscription_id_encrypted FROM {tables['device']} d "
               "WHERE d.user_id = {user} AND d.is_active "
               "AND ({device} IS NULL OR d.id = {device}) ORDER BY d.id")
    insert_values = ", ".join(
        "(SELECT id FROM n)" if column == "notification_id" else
        "%(context)s::jsonb" if column == "context" else f"%({column})s"
        for column in PUSH_INSERT_COLUMNS)
    return {
        "recipient": (
            f"SELECT {_columns('u', PUSH_RECIPIENT_USER_COLUMNS)}, "
            f"{_columns('p', PUSH_PREFERENCE_COLUMNS)}, EXISTS ("
            + devices.format(user="u.id", device="%(device)s::bigint") + ") "
            f"FROM {tables['user']} u LEFT JOIN {tables['preference']} p "
            "ON p.user_id = u.id WHERE u.id = %(user)s AND u.is_active"
        ),
        # The row and its in-app notification (when it has one) in one statement.
        "insert": (
            f"WITH n AS (INSERT INTO {tables['notification']} "
            f"({', '.join(NOTIFICATION_INSERT_COLUMNS)}) "
            "SELECT %(user_id)s, %(n_kind)s, %(n_title)s, %(n_body)s, false, "
            "%(n_important)s, %(created_at)s WHERE %(in_app)s RETURNING id) "
            f"INSERT INTO {tables['log']} ({', '.join(PUSH_INSERT_COLUMNS)}) "
            f"VALUES ({insert_values}) RETURNING id, notification_id"
        ),
        # Claimable: queued; or sending, when the claim is stale or belongs to this same
        # message (its earlier attempt ended without recording an outcome).
        "claim": (
            f"WITH claimed AS (UPDATE {tables['log']} SET status = %(sending)s, "
            "attempts = attempts + 1, last_attempt_at = %(now)s, updated_at = %(now)s, "
            "message_id = CASE WHEN %(message_id)s = '' THEN message_id "
            "ELSE %(message_id)s END "
            "WHERE id = %(id)s AND (status = %(queued)s "
            "OR (status = %(sending)s AND (last_attempt_at < %(stale)s "
            "OR (%(message_id)s <> '' AND message_id = %(message_id)s)))) "
            f"RETURNING {', '.join(PUSH_CLAIM_RETURNING)}) "
            f"SELECT {_columns('c', PUSH_CLAIM_RETURNING)}, u.first_name, "
            f"{_columns('p', PUSH_PREFERENCE_COLUMNS)}, ARRAY("
            + devices.format(user="c.user_id", device="c.device_id") + "), "
            f"n.title, n.body, {commit} "
            f"FROM claimed c JOIN {tables['user']} u ON u.id = c.user_id "
            f"LEFT JOIN {tables['preference']} p ON p.user_id = c.user_id "
            f"LEFT JOIN {tables['notification']} n ON n.id = c.notification_id"
        ),
        "finish": (
            f"UPDATE {tables['log']} SET "
            + ", ".join(f"{column} = %s" for column in PUSH_FINISH_COLUMNS)
            + f" FROM (SELECT {commit}) AS commit_mode WHERE id = %s"
        ),
    }


def json_value(value):
    """A jsonb column's value (Django's psycopg setup hands it over as text)."""
    return json.loads(value) if isinstance(value, str) else value


def _push_preference(user_id: int, values: tuple) -> PushPreference:
    pref_id, enabled, opted_out, consent, quiet_start, quiet_end = values
    if pref_id is None:
        return PushPreference(user_id=user_id)  # never chose: the defaults
    return PushPreference(id=pref_id, user_id=user_id, enabled=enabled,
                          opted_out_kinds=json_value(opted_out), promotional_consent=consent,
                          quiet_start=quiet_start, quiet_end=quiet_end)


@dataclass(frozen=True)
class PushRecipient:
    user: User
    preference: PushPreference  # an unsaved default when the user has none
    has_device: bool  # an active device (the given one, when there is one)


def push_recipient(user_id: int, *, device_id: int | None = None) -> PushRecipient | None:
    """The active user ``user_id`` with their push preference and whether they have an
    active device (``device_id``, when given)."""
    if isinstance(user_id, bool) or not isinstance(user_id, int):
        return None
    with connection.cursor() as cursor:
        cursor.execute(_push_statements()["recipient"], {"user": user_id, "device": device_id})
        row = cursor.fetchone()
    if row is None:
        return None
    size = len(PUSH_RECIPIENT_USER_COLUMNS)
    user = User(**dict(zip(PUSH_RECIPIENT_USER_COLUMNS, row[:size], strict=True)))
    user._state.adding = False
    preference = _push_preference(user.pk, row[size:size + len(PUSH_PREFERENCE_COLUMNS)])
    return PushRecipient(user=user, preference=preference, has_device=row[-1])


def push_log_insert(log: PushLog, notification: Notification | None) -> None:
    """INSERT ``log`` (its status and reason set) and, when given, its in-app
    ``notification``, in one statement; sets both pks."""
    now = log.created_at
    params = {column: getattr(log, column) for column in PUSH_INSERT_COLUMNS
              if column not in ("notification_id", "updated_at")}
    params.update(context=json.dumps(log.context), updated_at=now,
                  in_app=notification is not None,
                  n_kind=notification.kind if notification else "",
                  n_title=notification.title if notification else "",
                  n_body=notification.body if notification else "",
                  n_important=notification.is_important if notification else False)
    with connection.cursor() as cursor:
        cursor.execute(_push_statements()["insert"], params)
        log.pk, log.notification_id = cursor.fetchone()
    log._state.adding = False
    if notification is not None:
        notification.pk, notification.created_at = log.notification_id, now
        notification._state.adding = False
        log.notification = notification


def push_log_claim(push_log_id: int, *, message_id: str, stale_before: datetime
                   ) -> tuple[PushLog, PushPreference, list[str]] | None:
    """Claim the row; ``None`` when it is not claimable (see the statement). Returns the
    row (with its ``user``'s first name and, if it still exists, its ``notification``'s
    title and body), the user's preference and the encrypted subscription ids of the
    devices it may go to."""
    now = timezone.now()
    params = {"sending": PushStatus.SENDING.value, "queued": PushStatus.QUEUED.value,
              "now": now, "stale": stale_before, "message_id": message_id,
              "id": push_log_id}
    with connection.cursor() as cursor:
        cursor.execute(_push_statements(not connection.in_atomic_block)["claim"], params)
        row = cursor.fetchone()
    if row is None:
        return None
    size = len(PUSH_CLAIM_RETURNING)
    claimed = dict(zip(PUSH_CLAIM_RETURNING, row[:size], strict=True))
    claimed["context"] = json_value(claimed["context"])
    user = User(id=claimed["user_id"], first_name=row[size])
    user._state.adding = False
    log = PushLog(**claimed, user=user, status=PushStatus.SENDING, last_attempt_at=now)
    log._state.adding = False
    preference = _push_preference(user.pk, row[size + 1:size + 1 + len(PUSH_PREFERENCE_COLUMNS)])
    devices, title, body = row[-4:-1]  # row[-1]: the commit mode
    if title is not None:
        log.notification = Notification(id=log.notification_id, user_id=user.pk,
                                        title=title, body=body)
        log.notification._state.adding = False
    return log, preference, list(devices)


def push_log_finish(log: PushLog) -> None:
    """Write ``log``'s outcome (status, reason, OneSignal id, sent time) to its row."""
    with connection.cursor() as cursor:
        cursor.execute(_push_statements(not connection.in_atomic_block)["finish"],
                       [log.status, log.reason, log.provider_id, log.sent_at,
                        timezone.now(), log.pk])


# --- Campaigns: thousands of rows per chunk, by COPY --------------------------------------
# A campaign's planner writes a PushLog and an in-app Notification for each of up to 2,000
# users per job. COPY takes them at a few microseconds a row; a multi-row INSERT (or the
# ORM's bulk_create) spent ~100 µs a recipient building model instances and quoting
# arrays (README "Performance").

#: What the planner reads of each user: the user, their preference, and whether they have
#: an active device (of the campaign's platform, when it has one).
CAMPAIGN_USER_COLUMNS = ("id", "first_name", "preferred_language", "time_zone")


def campaign_users_after(after: int, *, platform: str, limit: int) -> list[tuple]:
    """The next ``limit`` active users with an id above ``after``, in id order: each a
    ``CAMPAIGN_USER_COLUMNS`` + preference (without its id) + has-device tuple."""
    preference = PUSH_PREFERENCE_COLUMNS[1:]
    query = (
        f"SELECT {_columns('u', CAMPAIGN_USER_COLUMNS)}, {_columns('p', preference)}, "
        f"EXISTS (SELECT 1 FROM {Device._meta.db_table} d WHERE d.user_id = u.id "
        "AND d.is_active AND (%(platform)s = '' OR d.platform = %(platform)s)) "
        f"FROM {User._meta.db_table} u LEFT JOIN {PushPreference._meta.db_table} p "
        "ON p.user_id = u.id WHERE u.is_active AND u.id > %(after)s "
        "ORDER BY u.id LIMIT %(limit)s")
    with connection.cursor() as cursor:
        cursor.execute(query, {"platform": platform or "", "after": after, "limit": limit})
        return cursor.fetchall()


#: Every column a campaign's PushLog row is copied with.
CAMPAIGN_LOG_COLUMNS = ("kind", "user_id", "status", "context", "language", "message_id",
                        "campaign_id", "batch_id", "notification_id", "provider_id",
                        "reason", "attempts", "send_at", "created_at", "updated_at")
#: Every column a campaign's Notification row is copied with (its id reserved first).
CAMPAIGN_NOTIFICATION_COLUMNS = ("id", *NOTIFICATION_INSERT_COLUMNS)


def notification_ids_reserve(count: int) -> list[int]:
    """``count`` ids from the Notification table's own sequence, for rows copied with
    their ids (so each PushLog can point to its notification in the same COPY)."""
    if count <= 0:
        return []
    table = Notification._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT nextval(pg_get_serial_sequence(%s, 'id')) "
                       "FROM generate_series(1, %s)", [table, count])
        return [row[0] for row in cursor.fetchall()]


def _copy(table: str, columns: tuple[str, ...], rows) -> None:
    with connection.cursor() as cursor, cursor.copy(
            f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def notifications_copy(rows) -> None:
    """COPY Notification rows, tuples in ``CAMPAIGN_NOTIFICATION_COLUMNS`` order."""
    _copy(Notification._meta.db_table, CAMPAIGN_NOTIFICATION_COLUMNS, rows)


def campaign_logs_copy(rows) -> None:
    """COPY a campaign's PushLog rows, tuples in ``CAMPAIGN_LOG_COLUMNS`` order."""
    _copy(PushLog._meta.db_table, CAMPAIGN_LOG_COLUMNS, rows)
