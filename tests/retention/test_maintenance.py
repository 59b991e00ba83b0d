"""Database maintenance (secure deletion: the vacuum after the overwrite), the monthly
comprehensive cleanup through a real worker, and payments, which no retention path
deletes."""

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.forms.models import model_to_dict
from django.utils import timezone

from audit.models import AuditLog
from audit.services import audit_log_record
from marketplace.models import ChatMessage, Order, RefreshToken
from payments.models import Payment
from retention.maintenance import catch_up_cleanups, database_maintenance, maintained_tables
from retention.models import DataStatistic, RetentionRun
from retention.services import CLEANUPS, Step, retention_run_start, retention_run_step
from tests.conftest import drain
from tests.notifications.conftest import make_user

NOW = timezone.now()
SECRET = "GATE-CODE-4711-DO-NOT-KEEP"


def days_ago(days: float):
    return NOW - timedelta(days=days)


def tuples_containing(table: str, text: str) -> int:
    """Tuples of ``table``, live or dead, whose data holds ``text`` (read off the heap
    pages with pageinspect, below MVCC: a deleted row not yet vacuumed is still there).

    Space freed by the vacuum is not zeroed by PostgreSQL, so raw page bytes may keep
    old data until reused (README "Data retention": encrypted disks and backups cover it).
    """
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS pageinspect")
        cursor.execute(
            "SELECT count(*) FROM generate_series(0, "
            "(pg_relation_size(%s::regclass) / current_setting('block_size')::int) - 1) p, "
            "LATERAL heap_page_items(get_raw_page(%s, p::int)) item "
            "WHERE position(convert_to(%s, 'UTF8') in item.t_data) > 0",
            [table, table, text])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_deleted_messages_do_not_linger_in_the_table_after_the_maintenance_vacuum():
    ada, bo = make_user("ada@example.test"), make_user("bo@example.test")
    for n in range(200):
        ChatMessage.objects.create(sender=ada, recipient=bo, body=f"kept {n}", is_read=False,
                                   created_at=days_ago(100))
    ChatMessage.objects.create(sender=ada, recipient=bo, body=SECRET, is_read=True,
                               created_at=days_ago(100))
    table = ChatMessage._meta.db_table
    run = retention_run_start("chat-cleanup", dry_run=False, now=NOW)
    while retention_run_step(run.pk, "chat-cleanup") == Step.MORE:
        pass

    assert not ChatMessage.objects.filter(body=SECRET).exists()
    assert tuples_containing(table, SECRET) == 1  # deleted, but still in a dead tuple

    maintenance = database_maintenance(now=NOW)

    assert tuples_containing(table, SECRET) == 0
    assert ChatMessage.objects.count() == 200
    assert maintenance.counts["tables"] == len(maintained_tables())
    assert table in maintained_tables() and "django_session" in maintained_tables()
    stats = dict(DataStatistic.objects.values_list("name", "value"))
    assert stats[f"db.{table}.rows"] == 200 and stats[f"db.{table}.bytes"] > 0
    assert AuditLog.objects.filter(action="retention.database_maintenance").count() == 1


@pytest.mark.django_db(transaction=True)
def test_database_maintenance_removes_expired_tokens_first():
    ada = make_user("ada@example.test")
    RefreshToken.objects.create(user=ada, token_hash="x" * 64, expires_at=days_ago(1))
    live = RefreshToken.objects.create(user=ada, token_hash="y" * 64,
                                       expires_at=days_ago(-30))

    run = database_maintenance(now=NOW)

    assert list(RefreshToken.objects.values_list("pk", flat=True)) == [live.pk]
    assert run.counts["tokens_deleted"] == 1


@pytest.mark.django_db(transaction=True)
def test_the_monthly_catch_up_runs_every_cleanup_and_reports_counts(broker, worker,
                                                                    settings):
    from retention.tasks import retention_comprehensive_cleanup

    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]
    ada, bo = make_user("ada@example.test"), make_user("bo@example.test")
    ChatMessage.objects.create(sender=ada, recipient=bo, body=SECRET, is_read=True,
                               created_at=days_ago(100))
    entry = audit_log_record(action="test.old", resource=AuditLog)
    AuditLog.objects.filter(pk=entry.pk).update(created_at=days_ago(400))
    mail.outbox.clear()

    retention_comprehensive_cleanup.send()
    drain(broker, worker)

    assert not ChatMessage.objects.exists()
    assert not AuditLog.objects.filter(action="test.old").exists()
    ran = set(RetentionRun.objects.filter(status="done").values_list("cleanup", flat=True))
    assert ran == set(CLEANUPS) | {"comprehensive-cleanup", "temp-files-cleanup",
                                   "inactive-accounts"}
    assert set(catch_up_cleanups()) == {"chat-cleanup", "notification-cleanup",
                                        "audit-log-cleanup", "session-cleanup"}
    [report] = [m for m in mail.outbox if "retention report" in m.subject]
    assert "chat-cleanup: would delete 1" in report.body
    assert SECRET not in report.body and "ada@" not in report.body


@pytest.mark.django_db(transaction=True)
def test_no_retention_path_deletes_a_payment(broker, worker, settings):
    """Every cleanup, the maintenance and the catch-up, for real, over a payment whose
    order, payer and age would match any rule: the payment is untouched."""
    from retention.tasks import (
        retention_cleanup,
        retention_comprehensive_cleanup,
        retention_temp_files_cleanup,
    )

    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]
    payer = make_user("payer@example.test")
    make_user("payer@example.test".replace("payer", "other"))
    type(payer).objects.filter(pk=payer.pk).update(last_activity_at=days_ago(3 * 365),
                                                   date_joined=days_ago(8 * 365))
    order = Order.objects.create(client=payer, title="Deck", province="ON",
                                 subtotal_cents=10_000, tax_cents=1_300, total_cents=11_300,
                                 created_at=days_ago(8 * 365))
    payment = Payment.objects.create(order=order, payer=payer, amount_cents=11_300,
                                     tax_cents=1_300, stripe_payment_intent_id="pi_old",
                                     status="succeeded", created_at=days_ago(8 * 365))
    before = model_to_dict(payment)

    for name in CLEANUPS:
        retention_cleanup.send(cleanup=name)
    retention_temp_files_cleanup.send()
    retention_comprehensive_cleanup.send()
    drain(broker, worker)
    database_maintenance()

    assert model_to_dict(Payment.objects.get(pk=payment.pk)) == before
    assert Order.objects.filter(pk=order.pk).exists()
    assert not RetentionRun.objects.filter(status__in=["failed", "running"]).exists()
