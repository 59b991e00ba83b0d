"""Retention cleanups on real PostgreSQL: each rule at its boundary (ages by time travel),
dry runs, legal holds, batches that resume, the safety checks, a real worker."""

from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from marketplace.models import ChatMessage
from notifications.models import Notification
from retention import checks, policy
from retention.models import ArchiveManifest, DataStatistic, LegalHold, RetentionRun
from retention.services import (
    RetentionRefused,
    Step,
    retention_report,
    retention_run_start,
    retention_run_step,
)
from tests.conftest import drain
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def days_ago(days: float):
    return NOW - timedelta(days=days)


@pytest.fixture
def people():
    return make_user("ada@example.test"), make_user("bo@example.test", first_name="Bo")


def message(sender, recipient, *, age_days: float, read: bool = True, important=False):
    return ChatMessage.objects.create(sender=sender, recipient=recipient, body="see you at 9",
                                      is_read=read, is_important=important,
                                      created_at=days_ago(age_days))


def run_all(name: str, *, dry_run: bool = False, batch_size: int | None = None) -> RetentionRun:
    run = retention_run_start(name, dry_run=dry_run, now=NOW)
    while retention_run_step(run.pk, name, max_batches=1, batch_size=batch_size) == Step.MORE:
        pass
    run.refresh_from_db()
    return run


def test_chat_messages_read_past_90_days_go_unread_stay_important_are_archived(people):
    ada, bo = people
    young = message(ada, bo, age_days=89)
    old = message(ada, bo, age_days=91)
    unread = message(bo, ada, age_days=400, read=False)
    important = message(bo, ada, age_days=120, important=True)
    unread_important = message(bo, ada, age_days=120, read=False, important=True)

    run = run_all("chat-cleanup")

    assert set(ChatMessage.objects.values_list("pk", flat=True)) == {
        young.pk, unread.pk, unread_important.pk}
    assert not ChatMessage.objects.filter(pk__in=[old.pk, important.pk]).exists()
    assert (run.status, run.dry_run) == (RetentionRun.Status.DONE, False)
    assert run.counts == {"deleted": 1, "archived": 1, "archives": 1, "kept_unread": 2,
                          "held": 0, "chat.messages": 3, "chat.unread": 2,
                          "chat.important": 1, "chat.threads": 3}
    assert dict(DataStatistic.objects.values_list("name", "value")) == {
        "chat.messages": 3, "chat.unread": 2, "chat.important": 1, "chat.threads": 3}
    entry = AuditLog.objects.get(action="retention.run")
    assert entry.metadata == {"policy": "chat-messages", "dry_run": False, **run.counts}


def test_notifications_read_past_90_days_go_unread_ones_stay(people):
    ada, _ = people
    rows = {name: Notification.objects.create(user=ada, kind="push:order_status",
                                              title="Order #7", body="Deck repair",
                                              is_read=read, created_at=days_ago(age))
            for name, age, read in (("young", 89, True), ("old", 91, True),
                                    ("unread", 91, False))}

    run = run_all("notification-cleanup")

    left = set(Notification.objects.values_list("pk", flat=True))
    assert left == {rows["young"].pk, rows["unread"].pk}
    assert run.counts["deleted"] == 1


def test_a_dry_run_counts_and_changes_nothing(people):
    ada, bo = people
    for _ in range(3):
        message(ada, bo, age_days=100)

    run = run_all("chat-cleanup", dry_run=True)

    assert ChatMessage.objects.count() == 3
    assert run.counts["would_delete"] == 3 and "deleted" not in run.counts
    assert [r["would_delete"] for r in retention_report(NOW)
            if r["cleanup"] == "chat-cleanup"] == [3]


def test_a_legal_hold_on_a_user_or_a_record_blocks_deletion_until_released(people):
    ada, bo = people
    carol = make_user("carol@example.test", first_name="Carol")
    held_user = message(ada, bo, age_days=100)  # ada is held: as sender
    held_record = message(carol, carol, age_days=100)
    free = message(carol, carol, age_days=100)
    hold = LegalHold.objects.create(user=ada, reason="court order")
    LegalHold.objects.create(resource_type="marketplace.chatmessage",
                             resource_id=str(held_record.pk), reason="complaint")

    run = run_all("chat-cleanup")
    assert set(ChatMessage.objects.values_list("pk", flat=True)) == {held_user.pk,
                                                                     held_record.pk}
    assert not ChatMessage.objects.filter(pk=free.pk).exists()
    assert run.counts["held"] == 2

    LegalHold.objects.filter(pk=hold.pk).update(released_at=timezone.now())
    run_all("chat-cleanup")
    assert list(ChatMessage.objects.values_list("pk", flat=True)) == [held_record.pk]


def test_a_run_goes_batch_by_batch_from_its_last_id(people):
    ada, bo = people
    ids = [message(ada, bo, age_days=100).pk for _ in range(5)]
    run = retention_run_start("chat-cleanup", dry_run=False, now=NOW)

    assert retention_run_step(run.pk, "chat-cleanup", max_batches=1, batch_size=2) == Step.MORE
    run.refresh_from_db()
    assert (run.last_id, run.counts["deleted"]) == (ids[1], 2)
    # A row that stops matching before its batch comes (marked unread) stays.
    ChatMessage.objects.filter(pk=ids[4]).update(is_read=False)
    while retention_run_step(run.pk, "chat-cleanup", max_batches=1, batch_size=2) == Step.MORE:
        pass
    run.refresh_from_db()
    assert list(ChatMessage.objects.values_list("pk", flat=True)) == [ids[4]]
    assert run.counts["deleted"] == 4 and run.status == RetentionRun.Status.DONE
    # A repeated message of a finished run does nothing (and chains nothing).
    assert retention_run_step(run.pk, "chat-cleanup") == Step.OVER


def test_a_cutoff_younger_than_the_period_or_a_wrong_clock_is_refused(people):
    ada, bo = people
    recent = message(ada, bo, age_days=30)

    with pytest.raises(RetentionRefused, match="younger than 90 days"):
        retention_run_start("chat-cleanup", dry_run=False, now=NOW, cutoff=days_ago(10))
    with pytest.raises(RetentionRefused, match="PostgreSQL"):  # this clock a year ahead
        retention_run_start("chat-cleanup", dry_run=False, now=NOW + timedelta(days=365))

    assert ChatMessage.objects.filter(pk=recent.pk).exists()
    refused = RetentionRun.objects.filter(status=RetentionRun.Status.REFUSED)
    assert refused.count() == 2
    assert AuditLog.objects.filter(action="retention.refused", is_critical=True).count() == 2
    with pytest.raises(RetentionRefused, match="until the user deletes"):
        from retention.services import cutoff_for

        cutoff_for(policy.policy("user-accounts"), NOW)


def test_the_command_is_a_dry_run_unless_for_real(people):
    ada, bo = people
    message(ada, bo, age_days=100)
    out = StringIO()

    progress = StringIO()
    call_command("retention", "run", "chat-cleanup", stdout=out, stderr=progress)
    assert ChatMessage.objects.count() == 1 and "would_delete': 1" in out.getvalue()
    assert progress.getvalue().endswith("chat-cleanup [" + "#" * 30 + "] 100% 1/1\n")
    call_command("retention", "run", "chat-cleanup", "--for-real", stdout=out,
                 stderr=StringIO())
    assert ChatMessage.objects.count() == 0

    report = StringIO()
    call_command("retention", "report", stdout=report)
    assert "chat-cleanup (chat-messages" in report.getvalue()
    assert "see you" not in report.getvalue() + out.getvalue()  # counts only


@pytest.mark.django_db(transaction=True)
def test_the_scheduled_actor_runs_the_cleanup_through_a_real_worker(people, broker, worker,
                                                                    monkeypatch):
    from retention import services
    from retention.tasks import retention_cleanup

    monkeypatch.setattr(services, "BATCH_SIZE", 2)  # so it re-enqueues itself
    ada, bo = people
    for _ in range(25):
        message(ada, bo, age_days=100)
    keep = message(ada, bo, age_days=100, read=False)

    retention_cleanup.send(cleanup="chat-cleanup")
    drain(broker, worker)

    assert list(ChatMessage.objects.values_list("pk", flat=True)) == [keep.pk]
    [run] = RetentionRun.objects.all()
    assert (run.status, run.counts["deleted"], run.counts["kept_unread"]) == (
        RetentionRun.Status.DONE, 25, 1)


def test_the_policy_table_the_readme_and_the_admin_page_agree(staff_client):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert policy.policy_table_markdown() in readme
    page = staff_client.get(reverse("admin:retention_retentionpolicypage_changelist"))
    text = page.content.decode()
    for row in policy.policy_table_rows():
        for cell in row:
            assert cell.replace("+", "") in text.replace("+", "")
    # The seed plan's rows, in its order.
    assert [p.data_type for p in policy.POLICIES] == [
        "Chat messages", "Payment records", "Audit logs", "Session data",
        "Notification history", "Inactive accounts", "Temp files", "User accounts"]


def test_a_model_with_personal_data_and_no_policy_fails_the_check(monkeypatch):
    assert checks.check_retention_policy() == []
    uncovered = tuple(p if p.key != "chat-messages" else
                      policy.Policy(**{**p.__dict__, "models": ()})
                      for p in policy.POLICIES)
    monkeypatch.setattr(checks, "POLICIES", uncovered)
    [error] = checks.check_retention_policy()
    assert (error.id, "marketplace.chatmessage" in error.msg) == ("retention.E001", True)


def test_sessions_idle_or_expired_8_days_go_with_their_tokens_6_days_stay(people):
    from marketplace.models import RefreshToken, UserSession

    ada, _ = people

    def session(name, *, idle_days, expired_days_ago=-30):
        return UserSession.objects.create(user=ada, session_key_hash=name * 8,
                                          last_activity_at=days_ago(idle_days),
                                          expires_at=days_ago(expired_days_ago))

    def token(name, **fields):
        values = {"user": ada, "token_hash": name * 8, "expires_at": days_ago(-30),
                  "last_activity_at": days_ago(1), **fields}
        return RefreshToken.objects.create(**values)

    recent = session("a", idle_days=6)
    idle = session("b", idle_days=8)
    expired = session("c", idle_days=1, expired_days_ago=8)
    token_of_idle = token("d", session=idle)
    good = token("e", session=recent)
    revoked = token("f", revoked=True)
    inactive = token("g", is_active=False)
    lapsed = token("h", expires_at=days_ago(1))

    run_all("session-cleanup")
    run_all("refresh-token-cleanup")

    assert list(UserSession.objects.values_list("pk", flat=True)) == [recent.pk]
    assert not UserSession.objects.filter(pk=expired.pk).exists()
    assert list(RefreshToken.objects.values_list("pk", flat=True)) == [good.pk]
    for gone in (token_of_idle, revoked, inactive, lapsed):
        assert not RefreshToken.objects.filter(pk=gone.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_the_session_schedule_runs_the_token_cleanup_after_the_sessions(people, broker,
                                                                        worker):
    from marketplace.models import RefreshToken
    from retention.tasks import retention_cleanup

    ada, _ = people
    RefreshToken.objects.create(user=ada, token_hash="r" * 64, revoked=True,
                                expires_at=days_ago(-30))

    retention_cleanup.send(cleanup="session-cleanup")
    drain(broker, worker)

    assert not RefreshToken.objects.exists()
    assert sorted(RetentionRun.objects.values_list("policy", "status")) == [
        ("session-data", "done"), ("session-data", "done")]


def test_audit_entries_past_a_year_go_critical_ones_are_archived_and_the_run_audited():
    from audit.services import audit_log_record

    def entry(age_days, critical=False):
        made = audit_log_record(action="test.entry", resource=AuditLog, is_critical=critical)
        AuditLog.objects.filter(pk=made.pk).update(created_at=days_ago(age_days))
        return made.pk

    young, old, critical = entry(364), entry(366), entry(400, critical=True)

    run = run_all("audit-log-cleanup")

    left = set(AuditLog.objects.filter(action="test.entry").values_list("pk", flat=True))
    assert left == {young} and old not in left and critical not in left
    assert (run.counts["deleted"], run.counts["archived"]) == (1, 1)
    assert ArchiveManifest.objects.get().first_id == critical
    assert AuditLog.objects.get(action="retention.run").metadata["policy"] == "audit-logs"


def test_the_admins_action_log_past_a_year_goes_after_the_audit_trail(people):
    from django.contrib.admin.models import CHANGE, LogEntry
    from django.contrib.contenttypes.models import ContentType

    ada, _ = people
    kind = ContentType.objects.get_for_model(ChatMessage)

    def entry(age_days):
        made = LogEntry.objects.create(user=ada, content_type=kind, object_id="1",
                                       object_repr="Message #1", action_flag=CHANGE,
                                       change_message="edited")
        LogEntry.objects.filter(pk=made.pk).update(action_time=days_ago(age_days))
        return made.pk

    young, old = entry(364), entry(366)

    run = run_all("admin-log-cleanup")

    assert list(LogEntry.objects.values_list("pk", flat=True)) == [young]
    assert run.counts["deleted"] == 1 and not LogEntry.objects.filter(pk=old).exists()
