"""The queue dashboard in Django admin: who may see it, and what it shows."""

import re
import time
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from jobs.models import FailedJob, FailedJobStatus
from jobs.monitoring import stats
from tests.jobs import actors

URL = "/admin/jobs/dashboard/"


@pytest.fixture
def plain_staff(django_user_model):
    return django_user_model.objects.create_user("staff-plain@example.test", "pw-staff-123",
                                                 is_staff=True)


@pytest.fixture
def dashboard_staff(django_user_model):
    user = django_user_model.objects.create_user("staff-ops@example.test", "pw-staff-123",
                                                 is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_queue_dashboard",
                                                     content_type__app_label="jobs"))
    return user


def cells(html: str, queue: str) -> dict[str, str]:
    row = re.search(rf'<tr id="qd-queue-{queue}">(.*?)</tr>', html, re.S).group(1)
    return {name: unescape(re.sub(r"<[^>]+>", "", value)).strip()
            for name, value in re.findall(r'<td class="num qd-([a-z-]+)">(.*?)</td>', row, re.S)}


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login(client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"] == f"/admin/login/?next={URL}"


@pytest.mark.django_db
def test_non_staff_users_are_sent_to_login(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("c@example.test", "pw-c-12345"))
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_staff_without_the_permission_get_403(client, plain_staff, redis_client):
    client.force_login(plain_staff)
    assert client.get(URL).status_code == 403
    # and the admin index does not offer the link
    index = client.get("/admin/")
    assert index.status_code == 200
    assert URL.encode() not in index.content


@pytest.mark.django_db
def test_permitted_staff_see_the_numbers(client, dashboard_staff, broker, clean_stats):
    # Given three emails waiting, one delayed push, an hour of email stats, failed jobs
    for n in range(3):
        actors.email_noop.send(n)
    broker.enqueue(actors.email_noop.message(9).copy(queue_name="push"), delay=60_000)
    now = time.time()
    for minute_ago in (1, 5, 50):
        for _ in range(3):
            stats.recorder.record("emails", "email_send", "succeeded", run_ms=30, wait_ms=5,
                                  now=now - minute_ago * 60)
    stats.recorder.record("emails", "email_send", "failed", run_ms=30, wait_ms=5,
                          now=now - 120)
    stats.recorder.record("emails", "email_send", "succeeded", run_ms=30, wait_ms=5,
                          now=now - 2 * 3600)  # outside the last hour
    stats.recorder.flush()
    moment = timezone.now()
    for n, status in enumerate([FailedJobStatus.FAILED, FailedJobStatus.FAILED,
                                FailedJobStatus.DISCARDED]):
        FailedJob.objects.create(message_id=f"m{n}", actor_name="email_send",
                                 queue_name="emails", status=status, exception_type="E",
                                 first_failed_at=moment, last_failed_at=moment)
    client.force_login(dashboard_staff)

    # When the dashboard is opened
    response = client.get(URL)

    # Then it shows each queue's figures
    assert response.status_code == 200
    html = response.content.decode()
    emails = cells(html, "emails")
    assert emails["ready"] == "3"
    assert emails["delayed"] == "0"
    assert emails["failed"] == "2"
    assert emails["finished"] == "10"
    assert emails["rate"] == "10.00 %"
    assert emails["oldest"].endswith(" s")
    push = cells(html, "push")
    assert (push["ready"], push["delayed"], push["failed"], push["oldest"]) == (
        "0", "1", "0", "–")
    assert re.search(r'id="qd-finished">10<', html)
    assert re.search(r'id="qd-failed">1<', html)
    assert re.search(r'id="qd-workers">0<', html)
    # and the chart has bars for the minutes with jobs, drawn inline
    assert html.count('fill="#417690"/>') == 3
    assert html.count('fill="#ba2121"/>') == 1
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing from another host
    # and the admin index links to it
    assert URL.encode() in client.get("/admin/").content


@pytest.mark.django_db
def test_superusers_see_it_and_redis_outage_is_shown(client, django_user_model, settings,
                                                     redis_client):
    client.force_login(django_user_model.objects.create_superuser("root@example.test",
                                                                  "pw-root-123"))
    assert client.get(URL).status_code == 200

    settings.REDIS_OPTIONS = {"host": "127.0.0.1", "port": 16452, "db": 0}  # closed port
    response = client.get(URL)
    assert response.status_code == 200
    assert b"Redis is unreachable (ConnectionError)" in response.content
