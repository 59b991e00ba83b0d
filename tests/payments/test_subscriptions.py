"""Contractor subscriptions: signed Stripe events posted to the real webhook view and
processed by the real handler, on real PostgreSQL and Redis; the daily and monthly runs
called with the moment they run at (time travel by ``now``)."""

import threading
import time
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from audit.models import AuditLog
from marketplace.models import ContractorProfile
from notifications.models import EmailLog
from notifications.rendering import render_email
from payments.models import EventStatus, StripeEvent, Subscription, SubscriptionStatus
from payments.services.events import stripe_event_process, stripe_event_replay
from payments.services.subscriptions import (
    subscription_renewal_reminders_send,
    subscriptions_daily_run,
    subscriptions_summary_send,
)
from tests.notifications.conftest import make_user
from tests.payments.conftest import event, post_event

pytestmark = pytest.mark.django_db

TORONTO = zoneinfo.ZoneInfo("America/Toronto")
DAY = timedelta(days=1)


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, clock(hour, minute), TORONTO).astimezone(UTC)


def subscription(user, *, status: str = "active", period_end: datetime,
                 cancel_at_period_end: bool = False, price: str = "price_pro",
                 amount: int = 4_999, sub_id: str = "sub_1", metadata=None) -> dict:
    """A subscription object as API version 2025-09-30 sends it (the period on the item)."""
    return {"id": sub_id, "object": "subscription", "customer": "cus_1", "status": status,
            "cancel_at_period_end": cancel_at_period_end, "canceled_at": None,
            "currency": "cad",
            "metadata": {"user_id": str(user.pk)} if metadata is None else metadata,
            "items": {"object": "list", "data": [{
                "id": "si_1", "object": "subscription_item", "quantity": 1,
                "current_period_start": unix(period_end - 30 * DAY),
                "current_period_end": unix(period_end),
                "price": {"id": price, "object": "price", "unit_amount": amount,
                          "currency": "cad"}}]}}


def invoice(user, *, amount_due: int = 5_649, sub_id: str = "sub_1",
            period_start: datetime | None = None, invoice_id: str | None = "in_1") -> dict:
    lines = [{"period": {"start": unix(period_start),
                         "end": unix(period_start + 30 * DAY)}}] if period_start else []
    return {"id": invoice_id, "object": "invoice", "amount_due": amount_due,
            "currency": "cad", "billing_reason": "subscription_cycle",
            "parent": {"type": "subscription_details", "subscription_details": {
                "subscription": sub_id, "metadata": {"user_id": str(user.pk)}}},
            "lines": {"object": "list", "data": lines}}


def deliver(client, event_type: str, obj: dict, *, created: int) -> dict:
    """Post the signed event to the webhook and process it as the worker would."""
    payload = event(event_type, obj, created=created)
    assert post_event(client, payload).status_code == 200
    row = StripeEvent.objects.get(stripe_id=payload["id"])
    assert stripe_event_process(event_id=row.pk) == EventStatus.PROCESSED
    return payload


def emails(kind: str) -> list[dict]:
    return list(EmailLog.objects.filter(kind=kind).order_by("pk")
                .values_list("context", flat=True))


def audit_actions() -> list[str]:
    return list(AuditLog.objects.filter(resource_type="payments.subscription")
                .order_by("pk").values_list("action", flat=True))


@pytest.fixture
def contractor(db):
    user = make_user("pro@example.test", first_name="Robin")
    ContractorProfile.objects.create(user=user, business_name="Robin Renovations",
                                     city="Ottawa", province="ON", badges=["verified"])
    return user


def badges(user) -> list[str]:
    return ContractorProfile.objects.get(user=user).badges


@pytest.fixture
def active(client, contractor):
    """An active subscription mirrored from its events, renewing in 20 days."""
    period_end = datetime.now(UTC).replace(microsecond=0) + 20 * DAY
    created = int(time.time()) - 3 * 86_400
    deliver(client, "customer.subscription.created",
            subscription(contractor, status="incomplete", period_end=period_end),
            created=created)
    deliver(client, "invoice.paid", invoice(contractor), created=created + 1)
    deliver(client, "customer.subscription.updated",
            subscription(contractor, period_end=period_end), created=created + 1)
    return Subscription.objects.get()


def test_created_then_paid_is_active_with_the_pro_badge(active, contractor):
    assert (active.status, active.features_active, active.user_id, active.price_id,
            active.amount_cents, active.stripe_customer_id) == (
        SubscriptionStatus.ACTIVE, True, contractor.pk, "price_pro", 4_999, "cus_1")
    assert badges(contractor) == ["verified", "pro"]
    assert audit_actions() == ["subscription.status_changed",  # "" → incomplete
                               "subscription.status_changed",  # → active (invoice.paid)
                               "subscription.features_granted"]
    assert not EmailLog.objects.exists()


def test_a_subscription_without_our_user_id_is_ignored(client, contractor):
    deliver(client, "customer.subscription.created",
            subscription(contractor, period_end=datetime.now(UTC) + 30 * DAY, metadata={}),
            created=int(time.time()))
    assert not Subscription.objects.exists()
    assert StripeEvent.objects.get().status == EventStatus.PROCESSED


def test_an_invoice_before_its_subscription_is_retried_then_applied(client, contractor):
    payload = event("invoice.paid", invoice(contractor), created=int(time.time()))
    post_event(client, payload)
    row = StripeEvent.objects.get()
    with pytest.raises(Exception, match="sub_1"):
        stripe_event_process(event_id=row.pk, final_attempt=False)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (EventStatus.RECEIVED, 1)

    deliver(client, "customer.subscription.created",
            subscription(contractor, status="incomplete", period_end=datetime.now(UTC)
                         + 30 * DAY), created=payload["created"] - 1)
    assert stripe_event_process(event_id=row.pk) == EventStatus.PROCESSED

    subscription_row = Subscription.objects.get()
    assert (subscription_row.status, subscription_row.features_active) == ("active", True)


def test_dunning_emails_on_the_schedule_days_then_suspension_then_paid_restores(
        client, active, contractor):
    today = datetime.now(TORONTO).date()
    failed_at = local(today, 8)  # day 0, 08:00 Toronto
    deliver(client, "invoice.payment_failed", invoice(contractor), created=unix(failed_at))

    active.refresh_from_db()
    assert (active.status, active.past_due_since, active.grace_until, active.dunning_step,
            active.features_active) == (SubscriptionStatus.PAST_DUE, failed_at,
                                        failed_at + 7 * DAY, 1, True)
    assert len(emails("subscription_payment_failed")) == 1  # day 0, at once

    sent_after_run = []
    for day in range(1, 7):  # the schedule's 09:00 run, days 1 to 6
        subscriptions_daily_run(now=local(today + day * DAY, 9))
        sent_after_run.append(len(emails("subscription_payment_failed")))
    subscriptions_daily_run(now=local(today + 3 * DAY, 9, 30))  # a second run, same day

    assert sent_after_run == [2, 2, 3, 3, 4, 4]  # days 1, 3, 5
    assert len(emails("subscription_payment_failed")) == 4
    assert emails("subscription_payment_failed")[0] == {
        "subscription_id": active.pk, "amount_cents": 5_649, "currency": "CAD",
        "grace_until": (failed_at + 7 * DAY).isoformat()}
    assert badges(contractor) == ["verified", "pro"]  # still in the grace period

    subscriptions_daily_run(now=local(today + 7 * DAY, 9))  # grace over
    subscriptions_daily_run(now=local(today + 8 * DAY, 9))

    active.refresh_from_db()
    assert (active.features_active, active.suspended_at) == (False, local(today + 7 * DAY, 9))
    assert badges(contractor) == ["verified"]
    assert ContractorProfile.objects.get(user=contractor).is_visible  # listed, as free
    assert emails("subscription_suspended") == [{"subscription_id": active.pk}]
    assert len(emails("subscription_payment_failed")) == 4

    deliver(client, "invoice.paid", invoice(contractor, invoice_id="in_1"),
            created=unix(local(today + 8 * DAY, 11)))

    active.refresh_from_db()
    assert (active.status, active.features_active, active.past_due_since,
            active.suspended_at, active.dunning_step) == (
        SubscriptionStatus.ACTIVE, True, None, None, 0)
    assert badges(contractor) == ["verified", "pro"]
    assert audit_actions()[3:] == [
        "subscription.dunning_started", "subscription.dunning_email",
        "subscription.status_changed",
        "subscription.dunning_email", "subscription.dunning_email",
        "subscription.dunning_email", "subscription.suspended",
        "subscription.features_suspended", "subscription.dunning_cleared",
        "subscription.status_changed", "subscription.features_granted"]


def test_a_late_payment_failure_after_the_payment_changes_nothing(client, active, contractor):
    now = int(time.time())
    deliver(client, "invoice.paid", invoice(contractor, invoice_id="in_2"), created=now)
    deliver(client, "invoice.payment_failed", invoice(contractor, invoice_id="in_2"),
            created=now - 60)

    active.refresh_from_db()
    assert (active.status, active.past_due_since, active.features_active) == (
        SubscriptionStatus.ACTIVE, None, True)
    assert not emails("subscription_payment_failed")


def test_the_renewal_reminder_goes_once_per_period(client, active, contractor):
    period_end = active.current_period_end
    upcoming = deliver(client, "invoice.upcoming",
                       invoice(contractor, amount_due=5_649, period_start=period_end,
                               invoice_id=None), created=int(time.time()))
    stored = StripeEvent.objects.get(stripe_id=upcoming["id"])
    stripe_event_replay(event=stored)  # staff replay it: handled again, nothing sent again
    stripe_event_process(event_id=stored.pk)

    sent_daily, _ = subscription_renewal_reminders_send(now=period_end - 6 * DAY)

    assert sent_daily == 0
    assert emails("subscription_renewal_reminder") == [{
        "subscription_id": active.pk, "amount_cents": 5_649, "currency": "CAD",
        "renews_at": period_end.isoformat()}]

    # Renewed: the next period. Stripe's invoice.upcoming is lost this time; the daily
    # run sends it within the 7 days, once.
    next_end = period_end + 30 * DAY
    deliver(client, "customer.subscription.updated",
            subscription(contractor, period_end=next_end), created=int(time.time()) + 1)
    outside, _ = subscription_renewal_reminders_send(now=next_end - 8 * DAY)
    inside, _ = subscription_renewal_reminders_send(now=next_end - 6 * DAY)
    again, _ = subscription_renewal_reminders_send(now=next_end - 5 * DAY)

    assert (outside, inside, again) == (0, 1, 0)
    assert [c["renews_at"] for c in emails("subscription_renewal_reminder")] == [
        period_end.isoformat(), next_end.isoformat()]
    assert emails("subscription_renewal_reminder")[1]["amount_cents"] == 4_999  # the plan's


def test_the_monthly_report_is_counts_only(active, settings):
    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]

    assert subscriptions_summary_send(now=active.current_period_end - 25 * DAY) == 1

    [message] = mail.outbox
    assert message.subject == "[Jobsite] Subscriptions: monthly renewals report"
    assert "status active: 1" in message.body and "features active: 1" in message.body
    assert "renewing next 30 days: 1" in message.body
    assert "pro@example.test" not in message.body and "sub_1" not in message.body


def test_cancel_at_period_end_revokes_only_at_the_period_end(client, active, contractor):
    period_end = active.current_period_end
    now = int(time.time())
    deliver(client, "customer.subscription.updated",
            subscription(contractor, period_end=period_end, cancel_at_period_end=True),
            created=now)

    subscriptions_daily_run(now=period_end - timedelta(hours=1))

    active.refresh_from_db()
    assert (active.cancel_at_period_end, active.features_active) == (True, True)
    assert badges(contractor) == ["verified", "pro"]
    assert not emails("subscription_canceled")

    subscriptions_daily_run(now=period_end + timedelta(minutes=1))
    deliver(client, "customer.subscription.deleted",
            subscription(contractor, status="canceled", period_end=period_end,
                         cancel_at_period_end=True), created=now + 60)
    subscriptions_daily_run(now=period_end + DAY)

    active.refresh_from_db()
    assert (active.status, active.features_active, active.ended_at) == (
        SubscriptionStatus.CANCELED, False, period_end + timedelta(minutes=1))
    assert badges(contractor) == ["verified"]
    assert emails("subscription_canceled") == [
        {"subscription_id": active.pk, "ended_at": period_end.isoformat()}]
    assert audit_actions()[3:] == ["subscription.cancel_scheduled",
                                   "subscription.features_revoked", "subscription.ended",
                                   "subscription.status_changed"]


def test_canceled_in_good_standing_keeps_the_features_until_the_period_end(
        client, active, contractor):
    period_end = active.current_period_end
    deliver(client, "customer.subscription.deleted",
            subscription(contractor, status="canceled", period_end=period_end),
            created=int(time.time()))

    active.refresh_from_db()
    assert (active.status, active.features_active, active.access_until) == (
        SubscriptionStatus.CANCELED, True, period_end)

    subscriptions_daily_run(now=period_end - DAY)
    assert badges(contractor) == ["verified", "pro"]
    subscriptions_daily_run(now=period_end + timedelta(hours=9))

    active.refresh_from_db()
    assert (active.features_active, badges(contractor)) == (False, ["verified"])
    assert len(emails("subscription_canceled")) == 1


def test_an_older_update_arriving_after_a_newer_one_changes_nothing(client, active,
                                                                   contractor):
    period_end = active.current_period_end
    now = int(time.time())
    deliver(client, "customer.subscription.updated",
            subscription(contractor, period_end=period_end, cancel_at_period_end=True,
                         price="price_pro_yearly", amount=49_990), created=now)
    deliver(client, "customer.subscription.updated",
            subscription(contractor, period_end=period_end - 30 * DAY, status="past_due"),
            created=now - 10)

    active.refresh_from_db()
    assert (active.status, active.cancel_at_period_end, active.price_id, active.amount_cents,
            active.current_period_end, active.past_due_since) == (
        SubscriptionStatus.ACTIVE, True, "price_pro_yearly", 49_990, period_end, None)
    assert active.last_event_created == datetime.fromtimestamp(now, UTC)
    assert not emails("subscription_payment_failed")


def test_created_and_updated_of_one_second_end_active_in_either_order(client, contractor):
    period_end = datetime.now(UTC).replace(microsecond=0) + 30 * DAY
    now = int(time.time())
    deliver(client, "customer.subscription.updated",
            subscription(contractor, period_end=period_end), created=now)
    deliver(client, "customer.subscription.created",
            subscription(contractor, status="incomplete", period_end=period_end),
            created=now)

    row = Subscription.objects.get()
    assert (row.status, row.features_active) == (SubscriptionStatus.ACTIVE, True)


def test_the_same_event_twice_sends_one_email(client, active, contractor):
    payload = event("invoice.payment_failed", invoice(contractor), created=int(time.time()))
    assert post_event(client, payload).json()["duplicate"] is False
    assert post_event(client, payload).json()["duplicate"] is True
    row = StripeEvent.objects.get(stripe_id=payload["id"])
    stripe_event_process(event_id=row.pk)
    stripe_event_replay(event=row)  # handled again from admin
    stripe_event_process(event_id=row.pk)

    assert len(emails("subscription_payment_failed")) == 1
    assert audit_actions().count("subscription.dunning_started") == 1


@pytest.mark.django_db(transaction=True)
def test_two_failure_events_handled_at_once_start_dunning_once(contractor, broker):
    """Stripe's failure and its retry's failure processed by two workers at the same
    instant: the subscription's lock makes the second a retry of the same episode."""
    client = Client()
    period_end = datetime.now(UTC).replace(microsecond=0) + 20 * DAY
    now = int(time.time())
    deliver(client, "customer.subscription.created",
            subscription(contractor, period_end=period_end), created=now - 100)
    for amount in (5_649, 5_650):
        post_event(client, event("invoice.payment_failed",
                                 invoice(contractor, amount_due=amount), created=now))
    rows = list(StripeEvent.objects.filter(type="invoice.payment_failed")
                .values_list("pk", flat=True))
    barrier = threading.Barrier(2)

    def process(pk):
        barrier.wait()
        try:
            stripe_event_process(event_id=pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=process, args=(pk,)) for pk in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert StripeEvent.objects.filter(status=EventStatus.PROCESSED).count() == 3
    assert len(emails("subscription_payment_failed")) == 1
    assert AuditLog.objects.filter(action="subscription.dunning_started").count() == 1
    assert Subscription.objects.get().status == SubscriptionStatus.PAST_DUE


def test_the_dunning_email_reads_in_french_with_the_date_and_amount(contractor):
    contractor.preferred_language = "fr"
    rendered = render_email(kind="subscription_payment_failed", user=contractor, context={
        "subscription_id": 7, "amount_cents": 5_649, "currency": "CAD",
        "grace_until": "2027-03-10T14:00:00+00:00"})

    assert rendered.subject == "Nous n'avons pas pu renouveler votre abonnement Pro Jobsite"
    assert "56,49\u00a0$ CAD" in rendered.text and "10 mars 2027" in rendered.text
    assert "/account/subscription" in rendered.text


def test_the_three_schedules_are_declared():
    from payments.tasks import SCHEDULES

    declared = {spec.name: (spec.actor_name, spec.cron, spec.time_zone) for spec in SCHEDULES}
    assert {name: declared[name] for name in (
        "subscription-dunning", "subscription-renewal-reminders", "subscription-renewals")} == {
        "subscription-dunning": ("subscription_dunning", "0 9 * * *", "America/Toronto"),
        "subscription-renewal-reminders": ("subscription_renewal_reminders", "0 6 * * *",
                                           "America/Toronto"),
        "subscription-renewals": ("subscription_renewals", "0 6 1 * *", "America/Toronto")}


@pytest.mark.django_db(transaction=True)
def test_the_monthly_run_reports_to_staff_and_sends_the_reminders_due(contractor, broker,
                                                                      worker, settings):
    from payments.tasks import subscription_renewals
    from tests.conftest import drain

    settings.STAFF_ALERT_EMAILS = ["ops@example.test"]
    client = Client()
    renews = datetime.now(UTC).replace(microsecond=0) + 3 * DAY
    deliver(client, "customer.subscription.created",
            subscription(contractor, period_end=renews), created=int(time.time()))

    subscription_renewals.send()
    drain(broker, worker)

    assert [m.subject for m in mail.outbox if "[Jobsite]" in m.subject] == [
        "[Jobsite] Subscriptions: monthly renewals report"]
    assert emails("subscription_renewal_reminder") == [{
        "subscription_id": Subscription.objects.get().pk, "amount_cents": 4_999,
        "currency": "CAD", "renews_at": renews.isoformat()}]
    assert len([m for m in mail.outbox if "renews on" in m.subject]) == 1


@pytest.fixture
def portal_api(settings, httpserver):
    """Stripe's API as a local server: customer-portal sessions."""
    import json as _json

    from werkzeug import Response

    settings.STRIPE_API_BASE = httpserver.url_for("").rstrip("/")

    def create(request):
        return Response(_json.dumps({
            "id": "bps_1", "object": "billing_portal.session",
            "customer": request.form["customer"], "return_url": request.form["return_url"],
            "url": "https://billing.stripe.test/p/session/bps_1"}),
            content_type="application/json")

    httpserver.expect_request("/v1/billing_portal/sessions", method="POST"
                              ).respond_with_handler(create)
    return httpserver


def test_the_subscription_link_of_the_emails_opens_stripes_portal(active, contractor,
                                                                  portal_api, redis_client):
    # given a contractor with a subscription, signed in
    client = Client()
    client.force_login(contractor)

    # when they follow the link of a subscription email (twice: a double click)
    first = client.get("/account/subscription")
    again = client.get("/account/subscription")

    # then each is a redirect to their customer-portal session at Stripe, asked for their
    # customer with an idempotency key derived from the subscription, not a random one
    assert first.status_code == again.status_code == 302
    assert first["Location"] == "https://billing.stripe.test/p/session/bps_1"
    requests = [request for request, _ in portal_api.log]
    assert [r.form["customer"] for r in requests] == ["cus_1", "cus_1"]
    keys = {r.headers["Idempotency-Key"] for r in requests}
    assert len(keys) <= 2 and all(key.startswith("jobsite-") for key in keys)


def test_the_subscription_page_without_subscription_or_stripe(contractor, settings,
                                                              redis_client):
    client = Client()
    assert client.get("/account/subscription").status_code == 302  # to the login page
    client.force_login(contractor)
    assert client.get("/account/subscription").status_code == 404  # none yet

    Subscription.objects.create(stripe_subscription_id="sub_9", stripe_customer_id="cus_9",
                                user=contractor, status="active")
    settings.STRIPE_API_BASE = "http://127.0.0.1:1"  # Stripe unreachable
    response = client.get("/account/subscription")
    assert response.status_code == 503 and response["Retry-After"] == "30"
