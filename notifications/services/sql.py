"""The email hot paths in plain SQL: the recipient check, the queued row, the claim, the end.

Measured: building these queries through the ORM cost more CPU than rendering and sending
the email (``send_email`` 6.7 → 3.0 ms, ``email_deliver`` 9.0 → 4.4 ms; README
"Performance"). Each statement names its columns in a tuple below, and
``tests/notifications/test_sql_columns.py`` ties those tuples to the models: a new
``EmailLog`` field the INSERT does not set, or a renamed column, fails the suite instead
of failing in production.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from django.db import connection
from django.utils import timezone

from marketplace.models import User
from notifications.models import EmailLog, EmailPreference, EmailStatus, Suppression

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
                      "password", "last_login")
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
        context=json.loads(context) if isinstance(context, str) else context,
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
