"""The email and push hot paths' plain SQL (notifications.services.sql) is tied to the
models: a field added to EmailLog or PushLog, or a column renamed, fails here instead of
in production."""

import pytest
from django.db import connection, models

from marketplace.models import User
from notifications.models import EmailLog, EmailPreference, Notification, PushLog, PushPreference
from notifications.services import sql


def columns(model) -> set[str]:
    return {field.column for field in model._meta.concrete_fields}


def required_columns(model) -> set[str]:
    """Columns an INSERT must set: not null and without a database default."""
    return {field.column for field in model._meta.concrete_fields
            if not field.null and not field.primary_key
            and field.db_default is models.NOT_PROVIDED}


def test_every_column_the_sql_names_exists():
    assert set(sql.RECIPIENT_USER_COLUMNS) <= columns(User)
    assert set(sql.CLAIM_USER_COLUMNS) <= columns(User)
    assert set(sql.PREFERENCE_COLUMNS) <= columns(EmailPreference)
    for names in (sql.INSERT_COLUMNS, sql.CLAIM_SETS, sql.CLAIM_RETURNING,
                  sql.FINISH_COLUMNS):
        assert set(names) <= columns(EmailLog), names


def test_the_insert_sets_every_column_that_has_no_null_or_database_default():
    assert required_columns(EmailLog) == set(sql.INSERT_COLUMNS)


def test_the_claim_reads_every_column_a_rendered_email_needs():
    # What render_email and the unsubscribe link read of the user; what the outcome
    # update and the retry read of the row.
    assert {"email", "first_name", "preferred_language"} <= set(sql.CLAIM_USER_COLUMNS)
    assert {"id", "kind", "context", "language", "attempts", "user_id"} <= set(
        sql.CLAIM_RETURNING)


def test_every_column_the_push_sql_names_exists():
    assert set(sql.PUSH_RECIPIENT_USER_COLUMNS) <= columns(User)
    assert set(sql.PUSH_PREFERENCE_COLUMNS) <= columns(PushPreference)
    assert set(sql.NOTIFICATION_INSERT_COLUMNS) <= columns(Notification)
    assert set(sql.CAMPAIGN_USER_COLUMNS) <= columns(User)
    for names in (sql.PUSH_INSERT_COLUMNS, sql.PUSH_CLAIM_SETS, sql.PUSH_CLAIM_RETURNING,
                  sql.PUSH_FINISH_COLUMNS):
        assert set(names) <= columns(PushLog), names


def test_the_push_inserts_set_every_column_that_has_no_null_or_database_default():
    assert required_columns(PushLog) <= set(sql.PUSH_INSERT_COLUMNS)
    assert required_columns(Notification) == set(sql.NOTIFICATION_INSERT_COLUMNS)
    # Every PushLog column is either inserted or one the claim and the outcome write
    # later, or a campaign's (campaign rows are inserted by the campaign planner).
    later = {"id", "last_attempt_at", "sent_at", "campaign_id", "batch_id"}
    assert columns(PushLog) == set(sql.PUSH_INSERT_COLUMNS) | later


def test_the_campaign_copies_set_every_column_that_has_no_null_or_database_default():
    assert required_columns(PushLog) <= set(sql.CAMPAIGN_LOG_COLUMNS) <= columns(PushLog)
    assert set(sql.CAMPAIGN_NOTIFICATION_COLUMNS) == columns(Notification)


@pytest.mark.django_db
def test_the_statements_match_the_live_schema():
    # The columns are real in the migrated database, not only in the models.
    with connection.cursor() as cursor:
        live = {column.name for column in connection.introspection.get_table_description(
            cursor, EmailLog._meta.db_table)}
    assert set(sql.INSERT_COLUMNS) | set(sql.CLAIM_RETURNING) | set(sql.FINISH_COLUMNS) <= live
    with connection.cursor() as cursor:
        live_push = {column.name for column in connection.introspection.get_table_description(
            cursor, PushLog._meta.db_table)}
    assert (set(sql.PUSH_INSERT_COLUMNS) | set(sql.PUSH_CLAIM_RETURNING)
            | set(sql.PUSH_FINISH_COLUMNS)) <= live_push
