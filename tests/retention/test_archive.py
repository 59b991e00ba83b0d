"""Archive before delete, on a real moto_server S3: important rows reach cold storage as
verified JSON Lines before they are deleted; a failed archive deletes nothing; the daily
backup verification catches an object that no longer matches its manifest."""

import gzip
import json
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from audit.models import AuditLog
from marketplace.models import ChatMessage
from notifications.models import EmailLog, Notification, PushLog
from retention import services
from retention.archive import ArchiveFailed, archives_verify
from retention.models import ArchiveManifest, RetentionRun
from retention.services import Step, retention_run_start, retention_run_step
from tests.conftest import drain
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def days_ago(days: float):
    return NOW - timedelta(days=days)


@pytest.fixture
def people():
    return make_user("ada@example.test"), make_user("bo@example.test")


def message(sender, recipient, *, age_days=120, read=True, important=False, body="hi"):
    return ChatMessage.objects.create(sender=sender, recipient=recipient, body=body,
                                      is_read=read, is_important=important,
                                      created_at=days_ago(age_days))


def run_all(name: str, *, batch_size: int | None = None) -> RetentionRun:
    run = retention_run_start(name, dry_run=False, now=NOW)
    while retention_run_step(run.pk, name, max_batches=1, batch_size=batch_size) == Step.MORE:
        pass
    run.refresh_from_db()
    return run


def test_important_messages_reach_s3_verified_before_they_are_deleted(s3, people):
    ada, bo = people
    important = [message(ada, bo, important=True, body=f"gate code {n}") for n in range(3)]
    plain = message(ada, bo)

    run = run_all("chat-cleanup")

    assert not ChatMessage.objects.exists()
    assert (run.counts["deleted"], run.counts["archived"], run.counts["archives"]) == (1, 3, 1)
    [record] = ArchiveManifest.objects.all()
    assert (record.rows, record.first_id, record.last_id, record.status) == (
        3, important[0].pk, important[-1].pk, ArchiveManifest.Status.VERIFIED)
    assert s3.keys("archive") == [record.key, record.key + ".manifest.json"]
    assert record.key.startswith("retention/chat-messages/marketplace.chatmessage/")
    stored = s3.client.get_object(Bucket=s3.buckets["archive"], Key=record.key)
    assert stored["ServerSideEncryption"] == "AES256"
    rows = [json.loads(line) for line in gzip.decompress(stored["Body"].read()).splitlines()]
    assert [(r["id"], r["body"], r["is_important"]) for r in rows] == [
        (m.pk, m.body, True) for m in important]
    assert plain.pk not in [r["id"] for r in rows]  # only the important ones are archived
    manifest = json.loads(s3.client.get_object(Bucket=s3.buckets["archive"],
                                               Key=record.key + ".manifest.json")["Body"].read())
    assert (manifest["rows"], manifest["sha256"], manifest["run"]) == (3, record.sha256,
                                                                      run.pk)


def test_an_archive_that_fails_deletes_nothing_and_the_step_resumes_later(s3, settings,
                                                                          people):
    ada, bo = people
    important = message(ada, bo, important=True)
    plain = message(ada, bo)  # same batch: it waits for the archive too
    settings.AWS_ARCHIVE_BUCKET_NAME = "no-such-bucket"
    run = retention_run_start("chat-cleanup", dry_run=False, now=NOW)

    with pytest.raises(ArchiveFailed):
        retention_run_step(run.pk, "chat-cleanup")

    assert set(ChatMessage.objects.values_list("pk", flat=True)) == {important.pk, plain.pk}
    run.refresh_from_db()
    assert (run.status, run.last_id, run.counts["deleted"]) == (
        RetentionRun.Status.RUNNING, 0, 0)
    assert not ArchiveManifest.objects.exists()

    settings.AWS_ARCHIVE_BUCKET_NAME = s3.buckets["archive"]  # storage back
    assert retention_run_step(run.pk, "chat-cleanup") == Step.FINISHED
    assert not ChatMessage.objects.exists()


def test_an_archive_that_does_not_read_back_as_written_deletes_nothing(s3, people,
                                                                     monkeypatch):
    """The store accepts the object but returns other bytes (a broken proxy, a bad disk):
    verification fails before any delete."""
    from jobs import storage

    ada, bo = people
    important = message(ada, bo, important=True)
    real_get = storage.S3Store.get
    monkeypatch.setattr(storage.S3Store, "get", lambda self, key: (
        gzip.compress(b"{}\n") if key.endswith(".jsonl.gz") else real_get(self, key)))
    run = retention_run_start("chat-cleanup", dry_run=False, now=NOW)

    with pytest.raises(ArchiveFailed, match="SHA-256|size"):
        retention_run_step(run.pk, "chat-cleanup")
    assert ChatMessage.objects.filter(pk=important.pk).exists()


def test_a_row_edited_after_it_was_archived_is_not_deleted(s3, people, monkeypatch):
    ada, bo = people
    edited = message(ada, bo, important=True, body="v1")
    other = message(ada, bo, important=True, body="v1")
    real_archive = services.archive_rows

    def archive_then_edit(**kwargs):
        archived = real_archive(**kwargs)
        ChatMessage.objects.filter(pk=edited.pk).update(body="v2")  # a concurrent edit
        return archived

    monkeypatch.setattr(services, "archive_rows", archive_then_edit)
    run = run_all("chat-cleanup")

    assert list(ChatMessage.objects.values_list("pk", "body")) == [(edited.pk, "v2")]
    assert not ChatMessage.objects.filter(pk=other.pk).exists()
    assert (run.counts["archived"], run.counts["kept_changed"]) == (1, 1)


def test_backup_verification_catches_a_changed_or_missing_object(s3, people, settings):
    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]
    ada, bo = people
    for batch in range(3):
        message(ada, bo, important=True, body=f"batch {batch}")
    run_all("chat-cleanup", batch_size=1)
    first, second, third = ArchiveManifest.objects.order_by("id")
    assert archives_verify(now=NOW) == {"checked": 3, "mismatched": 0}

    bucket = s3.buckets["archive"]
    s3.client.put_object(Bucket=bucket, Key=second.key, Body=gzip.compress(b"{}\n"))
    for version in s3.client.list_object_versions(Bucket=bucket, Prefix=third.key)["Versions"]:
        s3.client.delete_object(Bucket=bucket, Key=version["Key"],
                                VersionId=version["VersionId"])
    mail.outbox.clear()

    assert archives_verify(now=NOW) == {"checked": 3, "mismatched": 2}

    statuses = dict(ArchiveManifest.objects.values_list("pk", "status"))
    assert statuses == {first.pk: "verified", second.pk: "mismatch", third.pk: "mismatch"}
    [alert] = mail.outbox
    assert "2 archive(s)" in alert.subject
    assert f"archive #{second.pk}" in alert.body and f"archive #{third.pk}" in alert.body
    assert "batch" not in alert.body  # ids and problems, never the archived content
    assert AuditLog.objects.filter(action="retention.archive_mismatch",
                                   is_critical=True).count() == 2


def test_backup_verification_skips_archives_older_than_its_window(s3, people):
    ada, bo = people
    message(ada, bo, important=True)
    run_all("chat-cleanup")
    ArchiveManifest.objects.update(created_at=days_ago(40))
    assert archives_verify(now=NOW, days=35) == {"checked": 0, "mismatched": 0}


def test_archives_go_to_the_local_store_under_make_runs_defaults(settings, tmp_path,
                                                                 people):
    settings.STORAGE_BACKEND = "local"
    settings.LOCAL_STORAGE_DIR = tmp_path
    ada, bo = people
    message(ada, bo, important=True, body="keep a copy")

    run_all("chat-cleanup")

    [record] = ArchiveManifest.objects.all()
    path = tmp_path / settings.AWS_ARCHIVE_BUCKET_NAME / record.key
    assert b"keep a copy" in gzip.decompress(path.read_bytes())
    assert archives_verify(now=NOW) == {"checked": 1, "mismatched": 0}


def test_notification_history_goes_by_its_rules_and_push_logs_lose_the_link(s3, people):
    ada, _ = people

    def notification(age, *, read=True, important=False):
        return Notification.objects.create(user=ada, kind="push:order_status", title="T",
                                           body="B", is_read=read, is_important=important,
                                           created_at=days_ago(age))

    old, young = notification(91), notification(89)
    important, unread = notification(91, important=True), notification(91, read=False)
    linked = PushLog.objects.create(user=ada, kind="order_status", status="sent",
                                    notification=old, created_at=days_ago(30))
    pushes = {status: PushLog.objects.create(user=ada, kind="order_status", status=status,
                                             context={"order_title": "Deck"},
                                             created_at=days_ago(91))
              for status in ("sent", "queued")}
    young_push = PushLog.objects.create(user=ada, kind="order_status", status="sent",
                                        created_at=days_ago(89))
    emails = {status: EmailLog.objects.create(user=ada, kind="order_status", status=status,
                                              created_at=days_ago(91))
              for status in ("sent", "sending")}

    run_all("notification-cleanup")
    run_all("push-log-cleanup")
    run_all("email-log-cleanup")

    assert set(Notification.objects.values_list("pk", flat=True)) == {young.pk, unread.pk}
    assert ArchiveManifest.objects.get().first_id == important.pk
    linked.refresh_from_db()
    assert linked.notification_id is None  # kept, without the deleted row
    assert set(PushLog.objects.values_list("pk", flat=True)) == {
        linked.pk, pushes["queued"].pk, young_push.pk}
    assert list(EmailLog.objects.values_list("pk", flat=True)) == [emails["sending"].pk]


@pytest.mark.django_db(transaction=True)
def test_the_notification_schedule_chains_push_and_email_history(s3, people, broker,
                                                                 worker):
    from retention.tasks import retention_cleanup

    ada, _ = people
    EmailLog.objects.create(user=ada, kind="order_status", status="sent",
                            created_at=days_ago(91))
    PushLog.objects.create(user=ada, kind="order_status", status="sent",
                           created_at=days_ago(91))

    retention_cleanup.send(cleanup="notification-cleanup")
    drain(broker, worker)

    assert not EmailLog.objects.exists() and not PushLog.objects.exists()
    assert sorted(RetentionRun.objects.values_list("cleanup", flat=True)) == [
        "email-log-cleanup", "notification-cleanup", "push-log-cleanup"]
