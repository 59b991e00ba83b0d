"""Sessions: Django's session rows read through the Redis cache (which may fail without
failing a request), and the session cleanup that removes expired rows with their cached
copies and counts the active sessions."""

from datetime import timedelta

import pytest
from django.contrib.sessions.backends.cached_db import KEY_PREFIX
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.urls import reverse
from django.utils import timezone

from jobs.sessions import SessionStore
from marketplace.models import UserSession
from retention.models import DataStatistic
from retention.services import Step, retention_run_start, retention_run_step
from tests.notifications.conftest import make_user

pytestmark = pytest.mark.django_db

NOW = timezone.now()


def run_all(name, *, dry_run=False):
    run = retention_run_start(name, dry_run=dry_run, now=NOW)
    while retention_run_step(run.pk, name) == Step.MORE:
        pass
    run.refresh_from_db()
    return run


def stored_session(*, expires_in: timedelta) -> str:
    store = SessionStore()
    store["marker"] = "x"
    store.set_expiry(60)
    store.save()
    Session.objects.filter(pk=store.session_key).update(expire_date=NOW + expires_in)
    return store.session_key


def test_a_login_session_is_cached_in_redis_under_the_namespace(client, redis_client,
                                                                 django_user_model):
    staff = django_user_model.objects.create_superuser("admin@example.test", "pw")
    client.force_login(staff)
    key = client.session.session_key

    assert client.get(reverse("admin:index")).status_code == 200
    assert caches["sessions"].get(KEY_PREFIX + key) is not None
    names = [name.decode() for name in redis_client.keys("*sessions*")]
    assert names and all(name.startswith("jobsite-test:sessions:") for name in names)


def test_with_redis_down_sessions_still_work_from_the_database(client, settings,
                                                               django_user_model):
    staff = django_user_model.objects.create_superuser("admin@example.test", "pw")
    settings.CACHES = {**settings.CACHES, "sessions": {
        **settings.CACHES["sessions"], "LOCATION": "redis://127.0.0.1:1/0"}}
    client.force_login(staff)  # the write to the cache fails; the row is saved

    assert client.get(reverse("admin:index")).status_code == 200
    assert Session.objects.filter(pk=client.session.session_key).exists()


def test_the_session_cleanup_removes_expired_web_sessions_and_their_cache(redis_client):
    expired = [stored_session(expires_in=-timedelta(hours=1)) for _ in range(3)]
    live = stored_session(expires_in=timedelta(days=1))
    cache = caches["sessions"]
    for key in expired + [live]:
        assert cache.get(KEY_PREFIX + key) is not None

    dry = run_all("session-cleanup", dry_run=True)
    assert dry.counts["would_delete_web_sessions"] == 3 and Session.objects.count() == 4

    run = run_all("session-cleanup")

    assert list(Session.objects.values_list("pk", flat=True)) == [live]
    assert run.counts["web_sessions_deleted"] == 3
    assert [cache.get(KEY_PREFIX + key) for key in expired] == [None] * 3
    assert cache.get(KEY_PREFIX + live) is not None


def test_active_session_statistics_after_the_token_cleanup():
    ada, bo = make_user("ada@example.test"), make_user("bo@example.test")
    for n, (user, idle_days) in enumerate([(ada, 1), (ada, 2), (bo, 1), (bo, 8)]):
        UserSession.objects.create(user=user, session_key_hash=f"{n}" * 64,
                                   last_activity_at=NOW - timedelta(days=idle_days),
                                   expires_at=NOW + timedelta(days=30))
    stored_session(expires_in=timedelta(days=1))

    run_all("session-cleanup")
    run_all("refresh-token-cleanup")

    stats = dict(DataStatistic.objects.values_list("name", "value"))
    assert (stats["sessions.active"], stats["sessions.users_active"],
            stats["sessions.web"]) == (3, 2, 1)
