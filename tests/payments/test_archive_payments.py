"""manage.py archive_payments on a real moto_server S3: old payment records reach GLACIER as
verified JSON Lines with a manifest, are marked archived and never deleted; an upload that
cannot be verified marks nothing."""

import gzip
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from audit.models import AuditLog
from jobs import storage
from jobs.archive import ArchiveFailed
from marketplace.models import Order
from payments.models import (
    JournalEntry,
    JournalLine,
    Payment,
    PaymentArchive,
    PaymentTaxLine,
)
from payments.services.accounting import journal_payment_post
from payments.services.archive import archive_cutoff, payments_archive_run
from payments.tax import payment_tax_record, tax_compute
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()
TABLES = ["payments_payment", "payments_paymenttaxline", "payments_journalentry",
          "payments_journalline"]


@pytest.fixture(autouse=True)
def rates(db):
    import importlib

    from django.apps import apps

    importlib.import_module("payments.migrations.0002_tax_rates").seed_tax_rates(apps, None)


def payment(*, age_days: float, n: int, posted: bool = True) -> Payment:
    """A payment in Ontario of ``age_days`` with its HST line and (``posted``) its entry."""
    from datetime import date

    breakdown = tax_compute(province="ON", subtotal_cents=10_000, on=date(2026, 6, 1))
    payer = make_user(f"payer{n}@example.test")
    order = Order.objects.create(client=payer, title="Deck", province="ON",
                                 subtotal_cents=10_000, tax_cents=1_300, total_cents=11_300)
    record = Payment.objects.create(order=order, payer=payer, amount_cents=11_300,
                                    stripe_payment_intent_id=f"pi_{n}", status="succeeded",
                                    created_at=NOW - timedelta(days=age_days))
    payment_tax_record(payment=record, breakdown=breakdown)
    if posted:
        journal_payment_post(payment=record)
    return record


@pytest.fixture
def history():
    old = [payment(age_days=800 + n, n=n) for n in range(5)]
    unposted = payment(age_days=900, n=5, posted=False)
    young = payment(age_days=700, n=6)  # under 2 years
    return old + [unposted], young


def table_counts() -> tuple[int, int, int, int]:
    return (Payment.objects.count(), PaymentTaxLine.objects.count(),
            JournalEntry.objects.count(), JournalLine.objects.count())


def test_a_dry_run_counts_and_changes_nothing(s3, history):
    before = table_counts()
    out = io.StringIO()

    call_command("archive_payments", "--older-than", "2y", "--dry-run", stdout=out)

    assert ("not archived: payments 6, tax_lines 6, journal_entries 5, journal_lines 15"
            in out.getvalue())
    assert table_counts() == before
    assert not Payment.objects.filter(archived_at__isnull=False).exists()
    assert s3.keys("archive") == [] and not PaymentArchive.objects.exists()
    assert not AuditLog.objects.filter(action__startswith="payments.archive").exists()


def test_a_run_archives_to_glacier_verified_and_marks_without_deleting(s3, history):
    old, young = history
    before = table_counts()
    err = io.StringIO()

    call_command("archive_payments", "--older-than", "2y", "--batch-size", "4",
                 stdout=io.StringIO(), stderr=err)

    assert table_counts() == before  # never deleted
    assert set(Payment.objects.filter(archived_at__isnull=False)
               .values_list("pk", flat=True)) == {p.pk for p in old}
    young.refresh_from_db()
    assert young.archived_at is None
    assert not JournalEntry.objects.filter(payment=young, archived_at__isnull=False).exists()
    assert JournalEntry.objects.filter(archived_at__isnull=False).count() == 5
    assert "100% 6/6" in err.getvalue()

    first, second = PaymentArchive.objects.order_by("first_payment_id")
    ids = sorted(p.pk for p in old)
    assert (first.first_payment_id, first.last_payment_id, first.payments_marked) == (
        ids[0], ids[3], 4)
    assert (second.first_payment_id, second.last_payment_id) == (ids[4], ids[5])
    assert first.counts == dict(zip(TABLES, [4, 4, 4, 12], strict=True))
    assert second.counts == dict(zip(TABLES, [2, 2, 1, 3], strict=True))
    bucket = s3.buckets["archive"]
    for record in (first, second):
        manifest = json.loads(s3.client.get_object(Bucket=bucket,
                                                   Key=record.manifest_key)["Body"].read())
        assert manifest["counts"] == record.counts
        assert manifest["objects"] == record.objects_written
        for described in manifest["objects"]:
            head = s3.client.head_object(Bucket=bucket, Key=described["object"],
                                         ChecksumMode="ENABLED")
            assert head["StorageClass"] == "GLACIER"
            assert head["ContentLength"] == described["size"]
            with pytest.raises(s3.client.exceptions.ClientError, match="InvalidObjectState"):
                s3.client.get_object(Bucket=bucket, Key=described["object"])
    # Restored, the first batch's payments object holds exactly those rows.
    [payments_object] = [d for d in first.objects_written if d["table"] == "payments_payment"]
    s3.client.restore_object(Bucket=bucket, Key=payments_object["object"],
                             RestoreRequest={"Days": 1})
    body = s3.client.get_object(Bucket=bucket, Key=payments_object["object"])["Body"].read()
    from hashlib import sha256

    assert sha256(body).hexdigest() == payments_object["sha256"]
    rows = [json.loads(line) for line in gzip.decompress(body).splitlines()]
    assert [(row["id"], row["archived_at"]) for row in rows] == [(pk, None) for pk in ids[:4]]
    [audit] = AuditLog.objects.filter(action="payments.archived")
    assert (audit.metadata["archives"], audit.metadata["payments"],
            audit.metadata["rows"]["payments_journalline"]) == (2, 6, 15)

    # Again: nothing left to archive.
    call_command("archive_payments", "--older-than", "2y", stdout=io.StringIO(),
                 stderr=io.StringIO())
    assert PaymentArchive.objects.count() == 2


def test_an_upload_whose_checksum_does_not_match_marks_nothing(s3, history, monkeypatch):
    """S3 reports another SHA-256 than the one written (a corrupted upload, a proxy that
    changed the body): the batch is not marked."""
    real_stat = storage.S3Store.stat

    def tampered(self, key):
        info = real_stat(self, key)
        if key.endswith("payments_journalentry.jsonl.gz"):
            return storage.ObjectInfo(size=info.size, sha256="0" * 64,
                                      storage_class=info.storage_class)
        return info

    monkeypatch.setattr(storage.S3Store, "stat", tampered)

    with pytest.raises(CommandError, match="SHA-256 differs"):
        call_command("archive_payments", "--older-than", "2y", stdout=io.StringIO(),
                     stderr=io.StringIO())

    assert not Payment.objects.filter(archived_at__isnull=False).exists()
    assert not JournalEntry.objects.filter(archived_at__isnull=False).exists()
    assert not PaymentArchive.objects.exists()
    [audit] = AuditLog.objects.filter(action="payments.archive_failed")
    assert audit.is_critical and audit.metadata["archives"] == 0


def test_an_object_stored_in_another_class_or_size_is_refused(s3, history, monkeypatch):
    real_stat = storage.S3Store.stat
    monkeypatch.setattr(storage.S3Store, "stat", lambda self, key: storage.ObjectInfo(
        size=real_stat(self, key).size, sha256=real_stat(self, key).sha256,
        storage_class="STANDARD"))

    with pytest.raises(ArchiveFailed, match="storage class STANDARD is not GLACIER"):
        payments_archive_run(cutoff=archive_cutoff("2y"))
    assert not Payment.objects.filter(archived_at__isnull=False).exists()


def test_the_bucket_gone_mid_run_keeps_the_verified_batches_and_marks_nothing_else(
        s3, history, settings):
    old, _ = history
    ids = sorted(p.pk for p in old)

    def bucket_gone(done):
        settings.AWS_ARCHIVE_BUCKET_NAME = "no-such-bucket"

    with pytest.raises(ArchiveFailed, match="writing"):
        payments_archive_run(cutoff=archive_cutoff("2y"), batch_size=2, progress=bucket_gone)

    assert set(Payment.objects.filter(archived_at__isnull=False)
               .values_list("pk", flat=True)) == set(ids[:2])
    assert PaymentArchive.objects.count() == 1
    [audit] = AuditLog.objects.filter(action="payments.archive_failed")
    assert (audit.metadata["archives"], audit.metadata["payments"],
            audit.metadata["after_payment_id"]) == (1, 2, ids[1])

    settings.AWS_ARCHIVE_BUCKET_NAME = s3.buckets["archive"]  # back: the run goes on
    counts = payments_archive_run(cutoff=archive_cutoff("2y"), batch_size=2)
    assert (counts["archives"], counts["payments"]) == (2, 4)
    assert Payment.objects.filter(archived_at__isnull=False).count() == 6


def test_a_payment_changed_after_it_was_read_is_left_for_the_next_run(s3, history,
                                                                     monkeypatch):
    from payments.services import archive

    old, _ = history
    changed = min(p.pk for p in old)
    real_write = archive.archive_manifest_write

    def write_then_refund(store, **kwargs):
        Payment.objects.filter(pk=changed).update(refunded_cents=100)  # a late refund
        return real_write(store, **kwargs)

    monkeypatch.setattr(archive, "archive_manifest_write", write_then_refund)
    counts = payments_archive_run(cutoff=archive_cutoff("2y"))

    assert (counts["payments"], counts["kept_changed"]) == (5, 1)
    assert Payment.objects.get(pk=changed).archived_at is None
    assert not JournalEntry.objects.filter(payment_id=changed,
                                           archived_at__isnull=False).exists()


def test_under_make_run_the_archive_goes_to_the_local_store(settings, tmp_path, history):
    settings.STORAGE_BACKEND = "local"
    settings.LOCAL_STORAGE_DIR = tmp_path

    counts = payments_archive_run(cutoff=archive_cutoff("2y"))

    assert (counts["archives"], counts["payments"]) == (1, 6)
    [record] = PaymentArchive.objects.all()
    root = tmp_path / settings.AWS_ARCHIVE_BUCKET_NAME
    assert json.loads((root / record.manifest_key).read_text())["counts"] == record.counts


def test_ages_in_years_months_and_days():
    from datetime import UTC, datetime

    now = datetime(2026, 8, 31, 12, tzinfo=UTC)
    assert archive_cutoff("2y", now=now) == datetime(2024, 8, 31, 12, tzinfo=UTC)
    assert archive_cutoff("90d", now=now) == datetime(2026, 6, 2, 12, tzinfo=UTC)
    assert archive_cutoff("2Y", now=datetime(2028, 2, 29, tzinfo=UTC)) == datetime(
        2026, 2, 28, tzinfo=UTC)
    assert archive_cutoff("18m", now=now) == datetime(2025, 2, 28, 12, tzinfo=UTC)
    for bad in ("2", "0y", "2w", "-1d", ""):
        with pytest.raises(ValueError):
            archive_cutoff(bad)
    with pytest.raises(CommandError, match="not an age"):
        call_command("archive_payments", "--older-than", "2weeks")
