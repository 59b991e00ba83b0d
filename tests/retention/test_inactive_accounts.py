"""The inactive-accounts workflow on real PostgreSQL (ages by time travel): the 2-year
boundary, the notice email in the user's language and time zone through a real worker,
cancellation by activity or login, the deletion after 30 days (orders kept and
anonymised, payments untouched), legal holds, dry runs, staff, the weekly review."""

import json
from datetime import timedelta
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from django.core import mail
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from marketplace.models import (
    ChatMessage,
    ContractorProfile,
    Order,
    RefreshToken,
    Review,
    User,
    UserSession,
)
from marketplace.search.index import search_profile_index
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
from notifications.rendering import local_date
from payments.models import Payment
from retention import accounts
from retention.models import AccountDeletionNotice, LegalHold, RetentionRun
from retention.services import RetentionRefused, Step
from tests.conftest import drain
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()
TWO_YEARS = 2 * 365
Notice = AccountDeletionNotice
FRENCH_MONTHS = ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
                 "septembre", "octobre", "novembre", "décembre"]


@pytest.fixture(autouse=True)
def anymail_test_backend(settings):
    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    mail.outbox = []
    yield
    mail.outbox = []


def days_ago(days: float):
    return NOW - timedelta(days=days)


def inactive(user: User, *, days: float, field: str = "last_activity_at") -> User:
    """Time travel: ``user``'s last activity (or, with field="date_joined" and no activity,
    their sign-up) was ``days`` ago."""
    values = {"date_joined": days_ago(days + 30), field: days_ago(days)}
    User.objects.filter(pk=user.pk).update(**values)
    user.refresh_from_db()
    return user


def run_all(*, dry_run: bool = False, batch_size: int | None = None) -> RetentionRun:
    run = accounts.inactive_accounts_run_start(dry_run=dry_run, now=timezone.now())
    while accounts.inactive_accounts_run_step(run.pk, max_batches=1,
                                              batch_size=batch_size) == Step.MORE:
        pass
    run.refresh_from_db()
    return run


def notice_due(user: User) -> Notice:
    """Time travel: the user's pending notice went out 31 days ago."""
    notice = Notice.objects.get(user=user, status=Notice.Status.PENDING)
    Notice.objects.filter(pk=notice.pk).update(notified_at=days_ago(31),
                                               delete_after=days_ago(1))
    notice.refresh_from_db()
    return notice


def snapshot(model, pk) -> dict:
    return model.objects.filter(pk=pk).values().get()


def test_two_years_less_a_day_is_not_notified_two_years_and_a_day_is():
    # Given accounts at either side of the 2-year boundary, by last activity or sign-up
    young = inactive(make_user("young@example.test"), days=TWO_YEARS - 1)
    old = inactive(make_user("old@example.test"), days=TWO_YEARS + 1)
    never_active = make_user("never@example.test")
    User.objects.filter(pk=never_active.pk).update(last_activity_at=None,
                                                   date_joined=days_ago(TWO_YEARS + 1))
    # ... and one whose activity is old but who signed in yesterday (a login counts)
    signed_in = inactive(make_user("login@example.test"), days=TWO_YEARS + 100)
    User.objects.filter(pk=signed_in.pk).update(last_login=days_ago(1))

    run = run_all()

    notices = Notice.objects.order_by("user_id")
    assert [n.user_id for n in notices] == [old.pk, never_active.pk]
    assert young.pk not in {n.user_id for n in notices}
    for notice in notices:
        assert notice.status == Notice.Status.PENDING
        assert notice.delete_after - notice.notified_at == timedelta(days=30)
        assert notice.email_status == EmailStatus.QUEUED
        assert notice.email_log.kind == EmailKind.ACCOUNT_DELETION_NOTICE
    assert (run.status, run.dry_run, run.policy) == (RetentionRun.Status.DONE, False,
                                                    "inactive-accounts")
    assert run.counts == {"notified": 2, "notice_undeliverable": 0, "cancelled": 0,
                          "held": 0, "deleted": 0, "waiting": 0}
    entry = AuditLog.objects.get(action="retention.run")
    assert entry.metadata == {"policy": "inactive-accounts", "dry_run": False, **run.counts}


@pytest.mark.django_db(transaction=True)
def test_the_notice_goes_through_a_real_worker_in_the_users_language_even_if_opted_out(
        broker, worker):
    # Given a French reader in Vancouver who turned off marketing and digest email, and an
    # English reader in Halifax
    fr = inactive(make_user("fr@example.test", language="fr", first_name="Élise",
                            time_zone="America/Vancouver"), days=TWO_YEARS + 5)
    EmailPreference.objects.create(user=fr, marketing=False, digest=False)
    en = inactive(make_user("en@example.test", time_zone="America/Halifax"),
                  days=TWO_YEARS + 5)

    # When the scheduled actor runs and the worker sends the email
    from retention.tasks import retention_inactive_accounts

    retention_inactive_accounts.send()
    drain(broker, worker)

    # Then each got one notice email, in their language, with the date in their zone
    sent = {message.to[0]: message for message in mail.outbox}
    assert sorted(sent) == ["en@example.test", "fr@example.test"]
    fr_notice, en_notice = (Notice.objects.get(user=u) for u in (fr, en))
    fr_day = fr_notice.delete_after.astimezone(ZoneInfo("America/Vancouver"))
    en_day = en_notice.delete_after.astimezone(ZoneInfo("America/Halifax"))
    message = sent["fr@example.test"]
    assert message.subject == "Votre compte Jobsite sera supprimé après deux ans sans utilisation"
    assert message.body.startswith("Bonjour Élise,")
    assert (f"supprimé à compter du {fr_day.day} {FRENCH_MONTHS[fr_day.month - 1]} "
            f"{fr_day.year}") in message.body
    assert "il suffit de vous connecter" in message.body
    assert "List-Unsubscribe" not in message.extra_headers  # transactional
    message = sent["en@example.test"]
    assert message.subject == "Your Jobsite account will be deleted after two years without use"
    assert f"on or after {en_day:%B} {en_day.day}, {en_day.year}" in message.body
    assert "To keep your account, simply sign in" in message.body
    assert EmailLog.objects.get(user=fr).status == EmailStatus.SENT
    [run] = RetentionRun.objects.all()
    assert (run.status, run.counts["notified"]) == (RetentionRun.Status.DONE, 2)


@pytest.mark.django_db(transaction=True)
def test_the_actor_re_enqueues_itself_from_the_last_id(broker, worker, monkeypatch):
    # One user per batch, 10 batches per message: 11 users need a second message
    monkeypatch.setattr(accounts, "BATCH_SIZE", 1)
    ids = [inactive(make_user(f"u{i}@example.test"), days=TWO_YEARS + 3).pk
           for i in range(11)]
    from retention.tasks import retention_inactive_accounts

    retention_inactive_accounts.send()
    drain(broker, worker)

    [run] = RetentionRun.objects.all()
    assert (run.status, run.counts["notified"], run.last_id) == (
        RetentionRun.Status.DONE, 11, ids[-1])
    assert Notice.objects.count() == len(mail.outbox) == 11


def test_the_deletion_date_is_written_on_the_users_own_calendar():
    moment = "2027-03-03T03:00:00+00:00"  # still 2 March in Vancouver, 3 March in Paris
    assert local_date(moment, "America/Vancouver", "fr") == "2 mars 2027"
    assert local_date(moment, "Europe/Paris", "en") == "March 3, 2027"
    assert local_date(moment, "Not/AZone", "en") == "March 2, 2027"  # read as Toronto


def test_activity_after_the_notice_cancels_it_and_the_account_stays():
    ada = inactive(make_user(), days=TWO_YEARS + 10)
    run_all()
    notice = notice_due(ada)
    # The user came back after the notice (the app's API recorded activity)
    User.objects.filter(pk=ada.pk).update(last_activity_at=days_ago(2))
    before = snapshot(User, ada.pk)

    run = run_all()

    notice.refresh_from_db()
    assert (notice.status, notice.cancel_reason) == (Notice.Status.CANCELLED,
                                                     Notice.CancelReason.ACTIVITY)
    assert notice.cancelled_at is not None and notice.deleted_at is None
    assert snapshot(User, ada.pk) == before
    assert (run.counts["cancelled"], run.counts["deleted"]) == (1, 0)


def test_signing_in_cancels_a_pending_notice_at_once():
    ada = inactive(make_user(), days=TWO_YEARS + 10)
    other = inactive(make_user("bo@example.test"), days=TWO_YEARS + 10)
    run_all()

    assert Client().login(email="ada@example.test", password="pw-ada-12345")

    assert Notice.objects.get(user=ada).status == Notice.Status.CANCELLED
    assert Notice.objects.get(user=ada).cancel_reason == Notice.CancelReason.ACTIVITY
    assert Notice.objects.get(user=other).status == Notice.Status.PENDING
    # And the next run does not notify her again: the login is activity
    run_all()
    assert Notice.objects.filter(user=ada).count() == 1


@pytest.fixture
def ada_with_everything():
    """Ada, a client and a contractor, with a record in every table that names her, and
    Bo, who deals with her."""
    ada = make_user(is_contractor=True, province="QC", time_zone="America/Montreal",
                    language="fr")
    bo = make_user("bo@example.test", first_name="Bo")
    ContractorProfile.objects.create(user=ada, business_name="Ada Lovelace Plomberie",
                                     city="Montréal", province="QC", latitude="45.5",
                                     longitude="-73.6", rating_average="4.50",
                                     rating_count=2, description="Ada Lovelace, plombière")
    placed = Order.objects.create(client=ada, contractor=bo, title="Deck at 12 Elm St",
                                  province="QC", subtotal_cents=10000, tax_cents=1498,
                                  total_cents=11498, status="completed")
    taken = Order.objects.create(client=bo, contractor=ada, title="Ada fixes the sink",
                                 province="ON")
    payment = Payment.objects.create(order=placed, payer=ada, amount_cents=11498,
                                     tax_cents=1498, stripe_payment_intent_id="pi_ada_1",
                                     status="succeeded")
    written = Review.objects.create(order=placed, author=ada, subject=bo, rating=4,
                                    text="Bo was late, call me at 555-0100")
    received = Review.objects.create(order=taken, author=bo, subject=ada, rating=5,
                                     text="Great work")
    ChatMessage.objects.create(sender=ada, recipient=bo, body="my door code is 1234")
    ChatMessage.objects.create(sender=bo, recipient=ada, body="see you at 9")
    bo_to_bo = ChatMessage.objects.create(sender=bo, recipient=bo, body="note to self")
    Notification.objects.create(user=ada, kind="push:order_status", title="Order #7",
                                body="Deck repair")
    bo_notification = Notification.objects.create(user=bo, kind="x", title="Hi", body="Bo")
    EmailLog.objects.create(kind=EmailKind.WELCOME, user=ada, status=EmailStatus.SENT)
    PushLog.objects.create(kind="order_status", user=ada)
    Device.objects.create(user=ada, platform="ios", subscription_id_encrypted="token",
                          subscription_id_hash="a" * 64)
    session = UserSession.objects.create(user=ada, session_key_hash="s" * 64,
                                         expires_at=days_ago(-30))
    RefreshToken.objects.create(user=ada, session=session, token_hash="t" * 64,
                                expires_at=days_ago(-30))
    EmailPreference.objects.create(user=ada, marketing=False)
    PushPreference.objects.create(user=ada)
    inactive(ada, days=TWO_YEARS + 40)
    return {"ada": ada, "bo": bo, "placed": placed, "taken": taken, "payment": payment,
            "written": written, "received": received, "bo_to_bo": bo_to_bo,
            "bo_notification": bo_notification}


def test_after_30_days_the_account_is_anonymised_orders_kept_payments_untouched(
        ada_with_everything):
    rows = ada_with_everything
    ada, bo = rows["ada"], rows["bo"]
    run_all()  # the notice
    notice = notice_due(ada)
    payment_before = snapshot(Payment, rows["payment"].pk)
    order_before = snapshot(Order, rows["placed"].pk)
    bo_before = snapshot(User, bo.pk)

    run = run_all()

    # The account: the row stays, nothing in it identifies Ada
    ada.refresh_from_db()
    assert ada.email == f"deleted-{ada.pk}@deleted.invalid"
    assert (ada.first_name, ada.last_name, ada.province) == ("", "", "")
    assert (ada.time_zone, ada.preferred_language) == ("America/Toronto", "en")
    assert (ada.is_active, ada.has_usable_password()) == (False, False)
    assert (ada.last_login, ada.last_activity_at, ada.email_verified_at) == (None,) * 3
    # Orders kept, their free-text title replaced; amounts untouched
    placed = snapshot(Order, rows["placed"].pk)
    assert placed["title"] == f"Order #{rows['placed'].pk}"
    assert {k: v for k, v in placed.items() if k not in ("title", "updated_at")} == {
        k: v for k, v in order_before.items() if k not in ("title", "updated_at")}
    assert Order.objects.get(pk=rows["taken"].pk).title == f"Order #{rows['taken'].pk}"
    # The payment row is exactly as it was
    assert snapshot(Payment, rows["payment"].pk) == payment_before
    # Reviews: her words gone, ratings kept; what Bo wrote about her stays
    written = Review.objects.get(pk=rows["written"].pk)
    assert (written.text, written.rating) == ("", 4)
    assert Review.objects.get(pk=rows["received"].pk).text == "Great work"
    profile = ContractorProfile.objects.get(user=ada)
    assert (profile.business_name, profile.city, profile.latitude, profile.is_visible,
            profile.description) == ("Deleted contractor", "", None, False, "")
    # Its search entry, rebuilt (by the debounced job the deletion sent), names her no more
    search_profile_index(profile_id=profile.pk)
    assert "lovelac" not in str(ContractorProfile.objects.values_list(
        "search_vector", flat=True).get(pk=profile.pk))
    assert str(profile.rating_average) == "4.50"
    # Her personal records are gone; Bo's own are not
    assert list(ChatMessage.objects.values_list("pk", flat=True)) == [rows["bo_to_bo"].pk]
    for model in (Notification, EmailLog, PushLog, Device, UserSession, RefreshToken,
                  EmailPreference, PushPreference):
        assert not model.objects.filter(user=ada).exists(), model.__name__
    assert Notification.objects.filter(pk=rows["bo_notification"].pk).exists()
    assert snapshot(User, bo.pk) == bo_before
    # The notice is closed, the deletion audited with the user's id only
    notice.refresh_from_db()
    assert (notice.status, notice.email_log_id) == (Notice.Status.DELETED, None)
    assert notice.deleted_at is not None
    entry = AuditLog.objects.get(action="retention.account_deleted")
    assert (entry.resource_type, entry.resource_id, entry.metadata, entry.is_critical) == (
        "marketplace.user", str(ada.pk), {"run_id": run.pk}, True)
    assert run.counts["deleted"] == 1
    audit_text = json.dumps(list(AuditLog.objects.values("metadata", "resource_id")))
    for personal in ("ada@example.test", "Lovelace", "Ada", "Elm St"):
        assert personal not in audit_text
    # A second run finds nothing left to do
    again = run_all()
    assert sum(again.counts.values()) == 0


def test_a_legal_hold_blocks_the_notice_and_the_deletion_until_released(
        ada_with_everything):
    rows = ada_with_everything
    ada = rows["ada"]
    carol = inactive(make_user("carol@example.test", first_name="Carol"),
                     days=TWO_YEARS + 40)
    run_all()
    notice_due(ada)
    notice_due(carol)
    hold = LegalHold.objects.create(user=ada, reason="court order")
    # One of Carol's orders is held on its own
    carol_order = Order.objects.create(client=carol, title="Roof at 3 Oak Ave", province="ON")
    LegalHold.objects.create(resource_type="marketplace.order",
                             resource_id=str(carol_order.pk), reason="complaint")
    held_email = ada.email

    run = run_all()

    ada.refresh_from_db()
    assert (ada.email, ada.is_active) == (held_email, True)
    assert ChatMessage.objects.filter(sender=ada).exists()
    notice = Notice.objects.get(user=ada)
    assert (notice.status, notice.cancel_reason) == (Notice.Status.CANCELLED,
                                                     Notice.CancelReason.LEGAL_HOLD)
    assert (run.counts["held"], run.counts["deleted"]) == (1, 1)  # Carol was deleted
    carol.refresh_from_db()
    assert carol.email == f"deleted-{carol.pk}@deleted.invalid"
    assert Order.objects.get(pk=carol_order.pk).title == "Roof at 3 Oak Ave"  # held record

    # While held, no new notice either
    run = run_all()
    assert run.counts["held"] == 1 and Notice.objects.filter(user=ada).count() == 1

    # Released: a new notice, 30 days ahead again
    LegalHold.objects.filter(pk=hold.pk).update(released_at=timezone.now())
    run = run_all()
    assert run.counts["notified"] == 1
    assert Notice.objects.filter(user=ada, status=Notice.Status.PENDING).count() == 1


def test_a_dry_run_counts_and_changes_nothing(ada_with_everything):
    ada = ada_with_everything["ada"]
    run_all()
    notice_due(ada)
    bo = inactive(ada_with_everything["bo"], days=TWO_YEARS + 3)
    users_before = list(User.objects.order_by("pk").values())
    notices_before = list(Notice.objects.values())
    emails_before = EmailLog.objects.count()

    run = run_all(dry_run=True)

    assert list(User.objects.order_by("pk").values()) == users_before
    assert list(Notice.objects.values()) == notices_before
    assert EmailLog.objects.count() == emails_before
    assert not Notice.objects.filter(user=bo).exists()
    assert ChatMessage.objects.filter(sender=ada).exists()
    assert run.dry_run and run.counts == {"would_notify": 1, "would_cancel": 0, "held": 0,
                                          "would_delete": 1, "waiting": 0}
    assert accounts.outcome_counts() == run.counts
    assert AuditLog.objects.get(action="retention.run", resource_id=str(run.pk)).metadata[
        "dry_run"] is True


def test_staff_are_never_candidates():
    staff = inactive(User.objects.create_user("ops@example.test", "pw-ops-12345",
                                              is_staff=True), days=TWO_YEARS * 2)
    # A superuser is never a candidate, even one not marked staff
    root = inactive(User.objects.create_user("root@example.test", "pw-root-12345",
                                             is_superuser=True), days=TWO_YEARS * 2)
    # A user notified before becoming staff
    promoted = inactive(make_user("new-ops@example.test"), days=TWO_YEARS + 5)
    run_all()
    User.objects.filter(pk=promoted.pk).update(is_staff=True)
    notice_due(promoted)

    run = run_all()

    assert not Notice.objects.filter(user__in=[staff, root]).exists()
    notice = Notice.objects.get(user=promoted)
    assert (notice.status, notice.cancel_reason) == (Notice.Status.CANCELLED,
                                                     Notice.CancelReason.NOT_A_CANDIDATE)
    assert User.objects.get(pk=promoted.pk).email == "new-ops@example.test"
    assert run.counts["cancelled"] == 1 and run.counts["notified"] == 0


def test_a_repeated_run_sends_no_second_notice_and_a_finished_run_does_nothing():
    ada = inactive(make_user(), days=TWO_YEARS + 3)
    first = run_all()
    second = run_all()

    assert Notice.objects.filter(user=ada).count() == 1
    assert EmailLog.objects.filter(user=ada).count() == 1
    assert (first.counts["notified"], second.counts["notified"],
            second.counts["waiting"]) == (1, 0, 1)
    assert accounts.inactive_accounts_run_step(first.pk) == Step.OVER


def test_a_run_goes_user_by_user_from_its_last_id():
    ids = [inactive(make_user(f"u{i}@example.test"), days=TWO_YEARS + 3).pk
           for i in range(5)]
    run = accounts.inactive_accounts_run_start(dry_run=False)

    assert accounts.inactive_accounts_run_step(run.pk, max_batches=1,
                                               batch_size=2) == Step.MORE
    run.refresh_from_db()
    assert (run.last_id, run.counts["notified"]) == (ids[1], 2)
    assert set(Notice.objects.values_list("user_id", flat=True)) == set(ids[:2])


def test_a_cutoff_younger_than_two_years_is_refused():
    ada = inactive(make_user(), days=400)
    with pytest.raises(RetentionRefused, match="younger than 2 years"):
        accounts.inactive_accounts_run_start(dry_run=False, cutoff=days_ago(300))
    assert not Notice.objects.filter(user=ada).exists()
    assert RetentionRun.objects.get().status == RetentionRun.Status.REFUSED


def test_the_command_is_a_dry_run_unless_for_real_and_the_report_counts():
    ada = inactive(make_user(), days=TWO_YEARS + 3)
    out = StringIO()

    call_command("retention", "run", "inactive-accounts", stdout=out, stderr=StringIO())
    assert not Notice.objects.exists() and "'would_notify': 1" in out.getvalue()
    call_command("retention", "run", "inactive-accounts", "--for-real", stdout=out,
                 stderr=StringIO())
    assert Notice.objects.filter(user=ada).count() == 1

    report = StringIO()
    call_command("retention", "report", stdout=report)
    line = next(line for line in report.getvalue().splitlines()
                if line.startswith("inactive-accounts"))
    assert "would_notify 0" in line and "waiting 1" in line
    assert "chat-cleanup (chat-messages" in report.getvalue()  # the cleanups still report
    assert "ada@" not in report.getvalue() + out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_the_weekly_review_emails_staff_counts_and_ids_never_addresses(broker, worker,
                                                                       settings):
    from retention.tasks import retention_inactive_account_review

    settings.STAFF_ALERT_EMAILS = ["ops@jobsite.test"]
    due = inactive(make_user("due@example.test", first_name="Dina"), days=TWO_YEARS + 60)
    accounts.inactive_accounts_run_step(
        accounts.inactive_accounts_run_start(dry_run=False).pk)
    drain(broker, worker)
    notice_due(due)
    fresh = [inactive(make_user(f"n{i}@example.test", first_name="Nora"),
                      days=TWO_YEARS + 3) for i in range(2)]
    held = inactive(make_user("held@example.test"), days=TWO_YEARS + 3)
    LegalHold.objects.create(user=held, reason="court order")
    mail.outbox = []

    retention_inactive_account_review.send()
    drain(broker, worker)

    [message] = mail.outbox
    assert message.to == ["ops@jobsite.test"]
    assert message.subject == "[Jobsite] Inactive accounts: weekly review"
    body = message.body
    assert "would notify: 2" in body and "would delete: 1" in body and "held: 1" in body
    assert f"Users to be notified: #{fresh[0].pk}, #{fresh[1].pk}" in body
    assert f"Users to be deleted: #{due.pk}" in body
    assert "Notices in the last 7 days: notified 0" in body  # the notice was time-travelled
    assert reverse("admin:retention_accountdeletionnotice_changelist") in body
    assert "@example.test" not in body and "Nora" not in body and "Dina" not in body
    # It is a review: nothing changed
    assert Notice.objects.get(user=due).status == Notice.Status.PENDING


def test_both_schedules_are_declared():
    from retention.tasks import SCHEDULES

    specs = {spec.name: spec for spec in SCHEDULES}
    assert (specs["inactive-accounts"].actor_name, specs["inactive-accounts"].cron,
            specs["inactive-accounts"].time_zone) == (
        "retention_inactive_accounts", "0 0 1 * *", "UTC")
    review = specs["inactive-account-review"]
    assert (review.actor_name, review.cron, review.time_zone) == (
        "retention_inactive_account_review", "0 4 * * 0", "America/Toronto")


def test_the_admin_lists_notices_with_what_a_run_would_do(staff_client):
    ada = inactive(make_user(), days=TWO_YEARS + 3)
    inactive(make_user("bo@example.test"), days=TWO_YEARS + 3)
    run_all()
    User.objects.filter(pk=ada.pk).update(last_activity_at=timezone.now())

    page = staff_client.get(reverse("admin:retention_accountdeletionnotice_changelist"))

    text = page.content.decode()
    assert page.status_code == 200
    assert "<th scope=\"row\">Would cancel</th><td>1</td>" in text
    assert "<th scope=\"row\">Waiting</th><td>1</td>" in text
    assert f"User #{ada.pk}" in text and "ada@example.test" not in text
