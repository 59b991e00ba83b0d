"""Push through a local HTTP server speaking OneSignal's REST API, with real Redis,
PostgreSQL and a real worker."""

import json
import time
from datetime import UTC, datetime
from datetime import time as clock

import dramatiq
import pytest
from django.urls import reverse
from werkzeug import Request, Response

from jobs.models import FailedJob
from jobs.recovery import redrive_unfinished
from notifications import onesignal
from notifications.models import (
    Device,
    Notification,
    Platform,
    PushLog,
    PushPreference,
    PushStatus,
)
from notifications.services.devices import device_register
from notifications.services.push import PUSH_RATE_LIMIT, quiet_hours_end, send_push
from notifications.services.push_consent import push_preference_update
from notifications.tasks import send_push_task
from tests.conftest import drain, wait_until
from tests.notifications.conftest import make_user

ORDER = {"order_id": 7, "order_title": "Deck repair", "status": "completed"}
API_KEY = "os_v2_app_test-only-key"  # settings_test's ONESIGNAL_API_KEY


@pytest.fixture
def onesignal_server(settings, httpserver):
    """A local server answering OneSignal's ``POST /notifications``; the platform talks to
    it as it would to api.onesignal.com."""
    settings.ONESIGNAL_API_URL = httpserver.url_for("/")
    return httpserver


def ok(notification_id: str = "b98881cc-1e94-4366-bbd9-db8f3429292b", **errors):
    return {"id": notification_id, "external_id": None, **({"errors": errors} if errors else {})}


def bodies(server) -> list[dict]:
    return [json.loads(request.get_data()) for request, _ in server.log]


@pytest.fixture
def fast_push_retries(monkeypatch):
    monkeypatch.setitem(send_push_task.options, "min_backoff", 10)
    monkeypatch.setitem(send_push_task.options, "max_backoff", 40)


def reader(email: str = "ada@example.test", *, language: str = "en", devices: int = 1,
           **fields):
    user = make_user(email, language=language, **fields)
    for i in range(devices):
        device_register(user=user, platform=Platform.IOS,
                        subscription_id=f"sub-{user.pk}-{i}-3f1b9c77a2")
    return user


@pytest.mark.django_db(transaction=True)
def test_the_request_is_exactly_what_onesignal_documents(onesignal_server, broker, worker):
    onesignal_server.expect_request("/notifications", method="POST").respond_with_json(ok())
    user = reader(language="fr")

    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    drain(broker, worker)

    [(request, _)] = onesignal_server.log
    assert request.headers["Authorization"] == f"Key {API_KEY}"
    assert request.headers["Content-Type"].startswith("application/json")
    assert json.loads(request.get_data()) == {
        "app_id": "00000000-0000-4000-8000-00000000a99",
        "target_channel": "push",
        "include_aliases": {"external_id": [str(user.pk)]},
        "headings": {"en": "Order #7 completed", "fr": "Commande n° 7 terminée"},
        "contents": {"en": 'Ada, your order "Deck repair" is now completed.',
                     "fr": "Ada, votre commande « Deck repair » est maintenant terminée."},
        "data": {"kind": "order_status", "order_id": 7},
        "idempotency_key": onesignal.idempotency_key(f"push-log:{log.pk}"),
        "ios_badgeType": "Increase", "ios_badgeCount": 1,
    }
    log.refresh_from_db()
    assert (log.status, log.provider_id, log.attempts) == (
        PushStatus.SENT, "b98881cc-1e94-4366-bbd9-db8f3429292b", 1)
    # its in-app twin, for the bell and the digest
    assert Notification.objects.get(pk=log.notification_id).title == "Commande n° 7 terminée"


@pytest.mark.django_db(transaction=True)
def test_an_english_reader_gets_english_only(onesignal_server, broker, worker):
    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    user = reader()

    send_push(kind="new_message", user_id=user.pk,
              context={"thread_id": "5a1c1a56-0000-4000-8000-00000000a11c", "sender_name": "Bo"})
    drain(broker, worker)

    [body] = bodies(onesignal_server)
    assert set(body["headings"]) == set(body["contents"]) == {"en"}
    assert body["data"] == {"kind": "new_message",
                            "thread_id": "5a1c1a56-0000-4000-8000-00000000a11c"}


@pytest.mark.django_db(transaction=True)
def test_a_500_is_retried_and_sent_once_under_one_idempotency_key(
        onesignal_server, broker, worker, fast_push_retries):
    onesignal_server.expect_ordered_request("/notifications").respond_with_response(
        Response("upstream", status=500))
    onesignal_server.expect_ordered_request("/notifications").respond_with_json(ok())
    user = reader()

    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    drain(broker, worker)

    first, second = bodies(onesignal_server)
    assert first["idempotency_key"] == second["idempotency_key"]  # OneSignal keeps one
    log.refresh_from_db()
    assert (log.status, log.attempts) == (PushStatus.SENT, 2)
    assert not FailedJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_refused_connection_is_retried_and_says_why(settings, onesignal_server, broker,
                                                      worker, monkeypatch):
    # OneSignal unreachable for the first attempt (nothing listens on the port), then up;
    # the retry's backoff (1.5-2 s here) leaves time to bring it up.
    import socket

    monkeypatch.setitem(send_push_task.options, "min_backoff", 1500)
    monkeypatch.setitem(send_push_task.options, "max_backoff", 2000)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    settings.ONESIGNAL_API_URL = f"http://127.0.0.1:{closed_port}"
    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    user = reader()

    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    wait_until(lambda: PushLog.objects.get(pk=log.pk).attempts == 1
               and PushLog.objects.get(pk=log.pk).status == PushStatus.QUEUED)
    log.refresh_from_db()
    # The cause's type is readable (not "[secret]"), and the row waits for its retry.
    assert "NewConnectionError" in log.reason
    settings.ONESIGNAL_API_URL = onesignal_server.url_for("/")  # the worker reads it anew
    drain(broker, worker)

    log.refresh_from_db()
    assert (log.status, log.attempts, len(onesignal_server.log)) == (PushStatus.SENT, 2, 1)


@pytest.mark.django_db(transaction=True)
def test_a_400_is_not_retried_and_lands_in_the_failed_jobs(onesignal_server, broker, worker):
    onesignal_server.expect_request("/notifications").respond_with_json(
        {"errors": ["Incorrect player_id format"]}, status=400)
    user = reader()

    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    drain(broker, worker)

    assert len(onesignal_server.log) == 1
    log.refresh_from_db()
    assert (log.status, log.reason) == (PushStatus.REJECTED, "OneSignal (HTTP 400)")
    wait_until(lambda: FailedJob.objects.filter(actor_name="send_push_task").exists())


@pytest.mark.django_db(transaction=True)
def test_a_429_waits_its_retry_after_without_holding_a_thread(onesignal_server, broker,
                                                              worker):
    seen: list[tuple[float, str]] = []
    throttled = {"done": False}

    def answer(request: Request) -> Response:
        body = json.loads(request.get_data())
        seen.append((time.time(), body["data"]["kind"]))
        if body["data"]["kind"] == "order_status" and not throttled["done"]:
            throttled["done"] = True
            return Response("{}", status=429, headers={"Retry-After": "2"},
                            content_type="application/json")
        return Response(json.dumps(ok()), content_type="application/json")

    onesignal_server.expect_request("/notifications").respond_with_handler(answer)
    user = reader()

    throttled_log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    wait_until(lambda: throttled["done"])
    other = send_push(kind="new_message", user_id=user.pk,
                      context={"thread_id": "t-1", "sender_name": "Bo"})
    drain(broker, worker)

    # The throttled push was sent again no sooner than 2 s later; the other push went out
    # in between, on a worker thread the throttled one did not hold
    (t_429, _), (t_other, kind_other), (t_retry, kind_retry) = seen
    assert (kind_other, kind_retry) == ("new_message", "order_status")
    assert t_other < t_429 + 2 <= t_retry + 0.05
    for log in (throttled_log, other):
        log.refresh_from_db()
        assert log.status == PushStatus.SENT


@pytest.mark.django_db(transaction=True)
def test_a_200_without_an_id_is_recorded_as_not_delivered(onesignal_server, broker, worker):
    onesignal_server.expect_request("/notifications").respond_with_json(
        {"id": "", "errors": ["All included players are not subscribed"]})
    user = reader()

    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    drain(broker, worker)

    log.refresh_from_db()
    assert (log.status, log.reason) == (PushStatus.NOT_DELIVERED,
                                        "All included players are not subscribed")


@pytest.mark.django_db(transaction=True)
def test_ids_onesignal_reports_invalid_deactivate_their_devices(onesignal_server, broker,
                                                               worker):
    user = reader(devices=2)
    first, second = Device.objects.filter(user=user).order_by("pk")
    onesignal_server.expect_ordered_request("/notifications").respond_with_json(
        ok(invalid_player_ids=[f"sub-{user.pk}-0-3f1b9c77a2"]))
    onesignal_server.expect_ordered_request("/notifications").respond_with_json(
        ok(invalid_aliases={"external_id": [str(user.pk)]}))

    send_push(kind="order_status", user_id=user.pk, context=ORDER, device_id=first.pk)
    drain(broker, worker)
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.is_active, first.deactivated_reason, second.is_active) == (
        False, "invalid_player_id", True)
    assert bodies(onesignal_server)[0]["include_subscription_ids"] == [
        f"sub-{user.pk}-0-3f1b9c77a2"]

    send_push(kind="order_status", user_id=user.pk, context=ORDER)
    drain(broker, worker)
    second.refresh_from_db()
    assert (second.is_active, second.deactivated_reason) == (False, "invalid_alias")


@pytest.mark.django_db(transaction=True)
def test_promotions_need_consent_opted_out_kinds_and_users_without_devices_get_none(
        onesignal_server, broker, worker):
    promo = {"headline_en": "Spring", "headline_fr": "Printemps", "message_en": "Book now.",
             "message_fr": "Réservez."}
    no_consent = reader("a@example.test")
    opted_out = reader("b@example.test")
    push_preference_update(user=opted_out, via="test", opt_out=["order_status"])
    no_device = reader("c@example.test", devices=0)

    logs = [send_push(kind="promotional", user_id=no_consent.pk, context=promo),
            send_push(kind="order_status", user_id=opted_out.pk, context=ORDER),
            send_push(kind="order_status", user_id=no_device.pk, context=ORDER)]
    drain(broker, worker)

    assert [log.status for log in logs] == [PushStatus.NO_CONSENT, PushStatus.OPTED_OUT,
                                            PushStatus.NO_DEVICE]
    assert [log.reason for log in logs] == ["No promotional consent", "Opted out",
                                            "No active device"]
    assert onesignal_server.log == []
    # consent is recorded with its time and source; with it, the promotion goes
    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    preference = push_preference_update(user=no_consent, via="app-settings",
                                        promotional_consent=True, quiet_start=clock(0),
                                        quiet_end=clock(0))
    assert (preference.promotional_consent_source, preference.promotional_consent_at
            is not None) == ("app-settings", True)
    log = send_push(kind="promotional", user_id=no_consent.pk, context=promo)
    drain(broker, worker)
    log.refresh_from_db()
    assert log.status == PushStatus.SENT


@pytest.mark.parametrize(("now", "zone", "expected"), [
    # Vancouver, 23:00 PDT: quiet until 08:00 PDT = 15:00Z
    (datetime(2026, 7, 1, 6, 0, tzinfo=UTC), "America/Vancouver",
     datetime(2026, 7, 1, 15, 0, tzinfo=UTC)),
    # Halifax, 22:30 ADT: until 08:00 ADT = 11:00Z
    (datetime(2026, 7, 2, 1, 30, tzinfo=UTC), "America/Halifax",
     datetime(2026, 7, 2, 11, 0, tzinfo=UTC)),
    # Halifax, spring-forward night: 01:00 AST, the clocks jump at 02:00; 08:00 is ADT
    (datetime(2026, 3, 8, 5, 0, tzinfo=UTC), "America/Halifax",
     datetime(2026, 3, 8, 11, 0, tzinfo=UTC)),
    # Vancouver, fall-back night: 23:00 PDT, 08:00 next morning is PST = 16:00Z
    (datetime(2026, 11, 1, 6, 0, tzinfo=UTC), "America/Vancouver",
     datetime(2026, 11, 1, 16, 0, tzinfo=UTC)),
    # just after midnight in Halifax (quiet since 21:00): the same morning
    (datetime(2026, 12, 1, 4, 30, tzinfo=UTC), "America/Halifax",
     datetime(2026, 12, 1, 12, 0, tzinfo=UTC)),
])
def test_quiet_hours_end_at_the_exact_utc_instant_in_the_users_zone(now, zone, expected):
    assert quiet_hours_end(now=now, time_zone=zone, start=clock(21),
                           end=clock(8)) == expected


def test_outside_quiet_hours_nothing_waits():
    noon_vancouver = datetime(2026, 7, 1, 19, 0, tzinfo=UTC)
    assert quiet_hours_end(now=noon_vancouver, time_zone="America/Vancouver",
                           start=clock(21), end=clock(8)) is None


@pytest.mark.django_db(transaction=True)
def test_a_non_urgent_push_in_quiet_hours_waits_in_the_delay_queue(onesignal_server, broker,
                                                                  worker):
    # Given a user whose quiet hours cover every moment (23:59 to 23:58)
    user = reader(time_zone="America/Halifax")
    push_preference_update(user=user, via="test", quiet_start=clock(0, 0),
                           quiet_end=clock(23, 59))
    onesignal_server.expect_request("/notifications").respond_with_json(ok())

    review = send_push(kind="review_request", user_id=user.pk,
                       context={"order_id": 7, "order_title": "Deck repair"})
    urgent = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    wait_until(lambda: PushLog.objects.get(pk=urgent.pk).status == PushStatus.SENT)
    time.sleep(0.5)

    # Then the urgent push went now; the review request waits for 23:59 Halifax time
    review.refresh_from_db()
    urgent.refresh_from_db()
    assert urgent.status == PushStatus.SENT and review.status == PushStatus.QUEUED
    expected = quiet_hours_end(now=review.created_at, time_zone="America/Halifax",
                               start=clock(0), end=clock(23, 59))
    assert review.send_at == expected
    [delayed] = [dramatiq.Message.decode(m) for m in
                 broker.client.hvals(f"{broker.namespace}:push.DQ.msgs")]
    assert delayed.message_id == review.message_id
    assert abs(delayed.options["eta"] / 1000 - expected.timestamp()) < 5
    assert len(onesignal_server.log) == 1


@pytest.mark.django_db(transaction=True)
def test_pushes_whose_messages_redis_lost_are_sent_again_when_due(onesignal_server, broker,
                                                                   request):
    # Given an urgent push and one waiting for the end of quiet hours, whose messages
    # Redis then lost (a restart without persistence)
    user = reader(time_zone="America/Vancouver")
    push_preference_update(user=user, via="test", quiet_start=clock(0, 0),
                           quiet_end=clock(23, 59))
    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    urgent = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    review = send_push(kind="review_request", user_id=user.pk,
                       context={"order_id": 7, "order_title": "Deck repair"})
    for name in broker.client.keys(f"{broker.namespace}:push*"):
        broker.client.delete(name)

    # When the platform re-drives unfinished work
    assert redrive_unfinished(cutoff_seconds=0) == 2

    # Then each has its message again under its own id: the review request still delayed
    # to the end of quiet hours, the urgent push due now, and a worker sends only that one
    [due] = [dramatiq.Message.decode(m)
             for m in broker.client.hvals(f"{broker.namespace}:push.msgs")]
    [delayed] = [dramatiq.Message.decode(m)
                 for m in broker.client.hvals(f"{broker.namespace}:push.DQ.msgs")]
    review.refresh_from_db()
    assert (due.message_id, delayed.message_id) == (urgent.message_id, review.message_id)
    assert abs(delayed.options["eta"] / 1000 - review.send_at.timestamp()) < 1
    request.getfixturevalue("worker")
    wait_until(lambda: PushLog.objects.get(pk=urgent.pk).status == PushStatus.SENT)
    time.sleep(0.5)
    assert PushLog.objects.get(pk=review.pk).status == PushStatus.QUEUED
    assert len(onesignal_server.log) == 1


@pytest.mark.django_db(transaction=True)
def test_the_21st_push_in_an_hour_is_not_sent(onesignal_server, broker, worker):
    from prometheus_client import REGISTRY

    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    user = reader()
    before = REGISTRY.get_sample_value("jobsite_pushes_rate_limited_total",
                                       {"kind": "order_status"}) or 0

    logs = [send_push(kind="order_status", user_id=user.pk, context=ORDER)
            for _ in range(PUSH_RATE_LIMIT.limit + 1)]
    drain(broker, worker)

    assert [log.status for log in logs[-2:]] == [PushStatus.QUEUED, PushStatus.RATE_LIMITED]
    assert len(onesignal_server.log) == 20
    assert REGISTRY.get_sample_value("jobsite_pushes_rate_limited_total",
                                     {"kind": "order_status"}) == before + 1


@pytest.mark.django_db(transaction=True)
def test_a_failed_push_retried_from_admin_is_sent(onesignal_server, broker, worker,
                                                  staff_client):
    onesignal_server.expect_ordered_request("/notifications").respond_with_json(
        {"errors": ["Invalid app_id"]}, status=400)
    onesignal_server.expect_ordered_request("/notifications").respond_with_json(ok())
    user = reader()
    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    drain(broker, worker)
    wait_until(lambda: FailedJob.objects.exists())

    response = staff_client.post(reverse("admin:jobs_failedjob_changelist"), {
        "action": "retry_selected", "_selected_action": [FailedJob.objects.get().pk]},
        follow=True)
    assert "a worker does their work again" in response.content.decode()
    drain(broker, worker)

    log.refresh_from_db()
    assert (log.status, log.attempts) == (PushStatus.SENT, 2)
    assert len(onesignal_server.log) == 2


@pytest.mark.django_db(transaction=True)
def test_device_ids_are_never_in_clear_in_redis_logs_or_admin(onesignal_server, broker,
                                                              worker, client, staff_client,
                                                              stderr_output):
    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    secret = "e7c1a9d2-sub-4b6f-83a0-PLAINTEXTTOKEN"
    user = make_user()
    client.force_login(user)

    response = client.post(reverse("notifications:push-devices"), content_type="application/json",
                           data={"platform": "android", "subscription_id": secret})
    assert response.status_code == 201
    device = Device.objects.get()
    send_push(kind="order_status", user_id=user.pk, context=ORDER, device_id=device.pk)
    # the message is in Redis now: look before the worker takes it
    stored = b"".join(v for k in broker.client.keys("*") if broker.client.type(k) == b"hash"
                      for v in broker.client.hvals(k))
    drain(broker, worker)

    assert bodies(onesignal_server)[0]["include_subscription_ids"] == [secret]  # sent to it
    assert secret.encode() not in stored
    assert secret not in device.subscription_id_encrypted and len(device.subscription_id_hash) == 64
    for path in (reverse("admin:notifications_device_changelist"),
                 reverse("admin:notifications_device_change", args=[device.pk]),
                 reverse("admin:notifications_pushlog_changelist")):
        page = staff_client.get(path)
        assert page.status_code == 200 and secret not in page.content.decode()
    assert secret not in stderr_output.getvalue()
    # and the device can be removed
    assert client.delete(reverse("notifications:push-device", args=[device.pk])).status_code == 204
    device.refresh_from_db()
    assert (device.is_active, device.deactivated_reason) == (False, "removed")


@pytest.mark.django_db
def test_the_device_endpoint_checks_its_input_and_who_asks(client):
    url = reverse("notifications:push-devices")
    assert client.post(url, content_type="application/json",
                       data={"platform": "ios", "subscription_id": "x"}).status_code == 401
    client.force_login(make_user())
    for bad in ({"platform": "symbian", "subscription_id": "x"},
                {"platform": "ios", "subscription_id": ""},
                {"platform": "ios", "subscription_id": "x" * 200}, ["ios"]):
        assert client.post(url, content_type="application/json", data=bad).status_code == 400
    assert not Device.objects.exists()
    assert not PushPreference.objects.exists()
    assert not PushLog.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_5000_user_broadcast_checks_everyone_and_uses_the_fewest_requests(
        onesignal_server, broker, worker):
    from jobs.encryption import payload_fernet
    from jobs.ratelimit import rate_limit_hit_many
    from marketplace.models import User
    from notifications.models import PushBatch, PushCampaign, PushCampaignStatus
    from notifications.services.campaigns import push_campaign_start
    from notifications.services.devices import subscription_id_hash

    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    # Given 5,000 users: 4,400 to send to now, 300 in quiet hours (all day, in Halifax),
    # 100 with push off, 100 without promotional consent, 50 without a device, and 50
    # whose 20 pushes this hour are used up
    groups = [("now", 4400), ("quiet", 300), ("off", 100), ("no_consent", 100),
              ("no_device", 50), ("limited", 50)]
    users = User.objects.bulk_create([
        User(email=f"bulk-{name}-{i}@example.test", password="!",
             time_zone="America/Halifax" if name == "quiet" else "America/Toronto")
        for name, count in groups for i in range(count)])
    by_group = {name: [u for u in users if u.email.startswith(f"bulk-{name}-")]
                for name, _ in groups}
    fernet = payload_fernet()
    Device.objects.bulk_create([
        Device(user=u, platform=Platform.ANDROID,
               subscription_id_encrypted=fernet.encrypt(f"s-{u.pk}".encode()).decode(),
               subscription_id_hash=subscription_id_hash(f"s-{u.pk}"))
        for u in users if not u.email.startswith("bulk-no_device-")])
    PushPreference.objects.bulk_create([
        PushPreference(user=u, promotional_consent=not name == "no_consent",
                       enabled=name != "off", quiet_start=clock(0), quiet_end=clock(
                           23, 59) if name == "quiet" else clock(0))
        for name, members in by_group.items() for u in members])
    for _ in range(PUSH_RATE_LIMIT.limit):
        rate_limit_hit_many(PUSH_RATE_LIMIT, [u.pk for u in by_group["limited"]])
    campaign = PushCampaign.objects.create(name="Spring", kind="promotional", context={
        "headline_en": "Spring", "headline_fr": "Printemps", "message_en": "Book now.",
        "message_fr": "Réservez."})

    # When staff start it
    assert push_campaign_start(campaign=campaign)
    wait_until(lambda: len(onesignal_server.log) >= 3 and PushCampaign.objects.get(
        pk=campaign.pk).status == PushCampaignStatus.SENDING, timeout=60)
    time.sleep(1)

    # Then the 4,400 went out in 3 requests (2,000 + 2,000 + 400) of external ids, each
    # batch under its own idempotency key; the 300 wait in one batch for 23:59 Halifax
    sent_ids = [b["include_aliases"]["external_id"] for b in bodies(onesignal_server)]
    assert sorted(len(ids) for ids in sent_ids) == [400, 2000, 2000]
    assert {int(i) for ids in sent_ids for i in ids} == {u.pk for u in by_group["now"]}
    keys = {b["idempotency_key"] for b in bodies(onesignal_server)}
    assert keys == {onesignal.idempotency_key(f"push-batch:{campaign.pk}:{n}")
                    for n in PushBatch.objects.filter(campaign=campaign, status="sent")
                    .values_list("number", flat=True)}
    [waiting] = PushBatch.objects.filter(campaign=campaign, status="queued")
    assert waiting.size == 300 and waiting.is_closed
    # and every user's record says what became of them
    statuses: dict[str, set] = {}
    for name, members in by_group.items():
        statuses[name] = set(PushLog.objects.filter(campaign=campaign, user__in=members)
                             .values_list("status", flat=True))
    assert statuses == {"now": {"sent"}, "quiet": {"queued"}, "off": {"opted_out"},
                        "no_consent": {"no_consent"}, "no_device": {"no_device"},
                        "limited": {"rate_limited"}}
    campaign.refresh_from_db()
    assert (campaign.recipients, campaign.skipped) == (4700, 300)
    assert PushLog.objects.filter(campaign=campaign).count() == 5000
    assert Notification.objects.filter(kind="push:promotional").count() == 4700


@pytest.mark.django_db(transaction=True)
def test_make_runs_console_push_is_sent_by_a_real_worker(broker, manage_py):
    from tests.conftest import child_env, worker_ready

    # Given the push worker group on make run's settings (PUSH_PROVIDER=console)
    worker = manage_py("runworkergroup", "push", "--processes", "1", "--threads", "8",
                       env=child_env(settings_module="config.settings", EMAIL_ESP=None,
                                     PUSH_PROVIDER=None), name="push-worker")
    worker_ready(worker)
    user = reader(language="fr")
    device = Device.objects.get(user=user)

    log = send_push(kind="order_status", user_id=user.pk, context=ORDER, device_id=device.pk)
    others = [send_push(kind="order_status", user_id=user.pk, context=ORDER)
              for _ in range(15)]

    # Then it prints the push, device ids redacted, and the row says sent
    wait_until(lambda: PushLog.objects.filter(status=PushStatus.SENT).count() == 16,
               timeout=30)
    output = worker.output()
    assert "Commande n° 7 terminée" in output
    assert '"include_subscription_ids": ["[redacted]"]' in output
    assert f"sub-{user.pk}-0" not in output
    # one whole line per push, however many threads print at once
    printed = [line.split("Push: ", 1)[1] for line in output.splitlines() if "Push:" in line]
    keys = {json.loads(line)["idempotency_key"] for line in printed}
    assert keys == {onesignal.idempotency_key(f"push-log:{row.pk}") for row in [log, *others]}


@pytest.mark.django_db
def test_staff_turn_push_off_in_one_admin_action_and_it_is_audited(staff_client):
    from audit.models import AuditLog

    user = reader()
    preference = push_preference_update(user=user, via="app", promotional_consent=True)

    response = staff_client.post(reverse("admin:notifications_pushpreference_changelist"), {
        "action": "turn_push_off", "_selected_action": [preference.pk]}, follow=True)

    assert "Push turned off for 1 user(s)." in response.content.decode()
    preference.refresh_from_db()
    assert preference.enabled is False
    entry = AuditLog.objects.filter(action="push.preferences_changed").latest("pk")
    assert entry.metadata["enabled"] is False and entry.metadata["via"].startswith("admin:")
    consent = AuditLog.objects.filter(action="push.preferences_changed").earliest("pk")
    assert consent.metadata == {"promotional_consent": True, "via": "app"}


@pytest.mark.django_db(transaction=True)
def test_staff_start_a_campaign_from_admin_and_see_its_progress(onesignal_server, broker,
                                                               worker, staff_client):
    from notifications.models import PushCampaign

    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    user = reader()
    push_preference_update(user=user, via="app", promotional_consent=True,
                           quiet_start=clock(0), quiet_end=clock(0))
    campaign = PushCampaign.objects.create(name="Spring", kind="promotional", context={
        "headline_en": "Spring", "headline_fr": "Printemps", "message_en": "Book now.",
        "message_fr": "Réservez."})

    response = staff_client.post(reverse("admin:notifications_pushcampaign_changelist"), {
        "action": "start_sending", "_selected_action": [campaign.pk]}, follow=True)
    assert "Spring: sending." in response.content.decode()
    drain(broker, worker)

    page = staff_client.get(reverse("admin:notifications_pushcampaign_changelist"))
    assert "1 / 1" in page.content.decode()
    campaign.refresh_from_db()
    assert (campaign.status, campaign.recipients) == ("done", 1)


@pytest.mark.django_db(transaction=True)
def test_a_campaign_for_one_platform_reaches_only_users_with_such_a_device(
        onesignal_server, broker, worker):
    from notifications.models import PushCampaign

    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    on_ios = reader("ios@example.test")  # reader() registers iOS devices
    on_android = make_user("android@example.test")
    device_register(user=on_android, platform=Platform.ANDROID,
                    subscription_id="sub-android-7d2e91")
    for user in (on_ios, on_android):
        push_preference_update(user=user, via="app", promotional_consent=True,
                               quiet_start=clock(0), quiet_end=clock(0))
    campaign = PushCampaign.objects.create(
        name="iOS only", kind="promotional", platform=Platform.IOS, context={
            "headline_en": "New", "headline_fr": "Nouveau", "message_en": "Update the app.",
            "message_fr": "Mettez l'app à jour."})

    from notifications.services.campaigns import push_campaign_start

    push_campaign_start(campaign=campaign)
    drain(broker, worker)

    [body] = bodies(onesignal_server)
    assert body["include_aliases"] == {"external_id": [str(on_ios.pk)]}
    assert dict(PushLog.objects.filter(campaign=campaign).values_list("user_id", "status")) == {
        on_ios.pk: PushStatus.SENT, on_android.pk: PushStatus.NO_DEVICE}


@pytest.mark.django_db(transaction=True)
def test_a_pushs_claim_and_outcome_commit_asynchronously_only_on_their_own(broker):
    # In autocommit (the actor) the claim and the outcome commit without waiting for the
    # WAL flush, and leave the connection's setting alone; inside a caller's transaction
    # they do not change how that transaction commits.
    from django.db import connection, transaction
    from django.utils import timezone

    from notifications.services import sql

    def commit_mode() -> str:
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            return cursor.fetchone()[0]

    user = reader()
    log = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    claimed, _, _ = sql.push_log_claim(log.pk, message_id="", stale_before=timezone.now())
    claimed.status = PushStatus.SENT
    sql.push_log_finish(claimed)
    assert commit_mode() == "on"
    assert PushLog.objects.get(pk=log.pk).status == PushStatus.SENT

    other = send_push(kind="order_status", user_id=user.pk, context=ORDER)
    with transaction.atomic():
        sql.push_log_claim(other.pk, message_id="", stale_before=timezone.now())
        assert commit_mode() == "on"


@pytest.mark.django_db(transaction=True)
def test_make_runs_demo_users_get_devices_and_staff_push_their_order_status(
        onesignal_server, broker, worker, staff_client):
    from io import StringIO

    from django.core.management import call_command

    from marketplace.models import Order, User

    onesignal_server.expect_request("/notifications").respond_with_json(ok())
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo_push", stdout=StringIO())
    call_command("seed_demo_push", stdout=StringIO())  # idempotent
    demo = User.objects.filter(email__endswith="@demo.jobsite.local", is_staff=False)
    assert Device.objects.filter(user__in=demo, is_active=True).count() == demo.count()
    client = Order.objects.order_by("pk").first().client

    response = staff_client.post(reverse("admin:marketplace_user_changelist"), {
        "action": "send_order_status_push", "_selected_action": [client.pk]}, follow=True)
    assert "Order status push: 1 queued." in response.content.decode()
    drain(broker, worker)

    order = Order.objects.filter(client=client).order_by("-created_at").first()
    [body] = bodies(onesignal_server)
    assert body["include_aliases"] == {"external_id": [str(client.pk)]}
    assert body["data"] == {"kind": "order_status", "order_id": order.pk}
    assert PushLog.objects.get(user=client).status == PushStatus.SENT
