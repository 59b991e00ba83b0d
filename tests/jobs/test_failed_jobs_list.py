"""The failed-job list in admin: filters, search, no personal data; the purge."""

import re
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from jobs import services
from jobs.models import FailedJob, FailedJobStatus
from jobs.tasks import SCHEDULES
from jobs.tasks import failed_jobs_purge as failed_jobs_purge_actor
from tests.conftest import drain

CHANGELIST = "/admin/jobs/failedjob/"


def make_failed_job(*, actor_name="send_email", queue_name="emails", days_ago=0,
                    message_id=None, **fields) -> FailedJob:
    when = timezone.now() - timedelta(days=days_ago)
    job = services.failed_job_record(
        message_id=message_id or f"msg-{actor_name}-{days_ago}",
        actor_name=actor_name, queue_name=queue_name,
        args=[5], kwargs={"to": "bob@example.com"}, options={},
        exception=ValueError("bad address bob@example.com"), attempts=1,
        first_failed_at=when, failed_at=when,
    )
    FailedJob.objects.filter(pk=job.pk).update(**fields)
    return job


@pytest.mark.django_db
def test_changelist_filters_and_search(staff_client):
    # given failed jobs on different queues and of different ages
    make_failed_job(actor_name="send_email", queue_name="emails", days_ago=0)
    make_failed_job(actor_name="image_resize", queue_name="images", days_ago=10)

    def listed(query: str) -> set[str]:
        page = staff_client.get(CHANGELIST + query).content.decode()
        return set(re.findall(r'class="field-actor_display"><a [^>]*>([^<]+)</a>', page))

    # then each filter and the search narrow the list
    assert listed("") == {"send_email", "image_resize"}
    assert listed("?queue_name=images") == {"image_resize"}
    assert listed("?actor_name=send_email") == {"send_email"}
    assert listed("?age=24h") == {"send_email"}
    assert listed("?age=older") == {"image_resize"}
    assert listed("?q=image_") == {"image_resize"}
    assert listed("?q=ValueError") == {"send_email", "image_resize"}
    assert listed("?status=discarded") == set()
    # and personal data from the exception appears nowhere
    assert "bob@example.com" not in staff_client.get(CHANGELIST).content.decode()


@pytest.mark.django_db
def test_failed_jobs_cannot_be_added_by_hand(staff_client):
    assert staff_client.get(CHANGELIST + "add/").status_code == 403


@pytest.mark.django_db
def test_purge_removes_only_rows_past_retention():
    # given failed jobs last failing 31, 29 and 0 days ago, in any status
    old = make_failed_job(actor_name="old", days_ago=31, status=FailedJobStatus.DISCARDED)
    make_failed_job(actor_name="recent", days_ago=29)
    make_failed_job(actor_name="today", days_ago=0)

    # when the purge runs with the default 30-day retention
    deleted = services.failed_jobs_purge()

    # then only the 31-day-old row is gone
    assert deleted == 1
    assert not FailedJob.objects.filter(pk=old.pk).exists()
    assert set(FailedJob.objects.values_list("actor_name", flat=True)) == {"recent", "today"}


@pytest.mark.django_db
@override_settings(FAILED_JOB_RETENTION_DAYS=7)
def test_purge_follows_the_retention_setting():
    make_failed_job(actor_name="eight", days_ago=8)
    make_failed_job(actor_name="six", days_ago=6)

    assert services.failed_jobs_purge() == 1
    assert list(FailedJob.objects.values_list("actor_name", flat=True)) == ["six"]
    assert services.failed_jobs_purge(older_than_days=0) == 1


@pytest.mark.django_db(transaction=True)
def test_purge_actor_runs_on_the_maintenance_queue(broker, worker):
    make_failed_job(actor_name="old", days_ago=40)
    make_failed_job(actor_name="recent", days_ago=1)

    failed_jobs_purge_actor.send()
    drain(broker, worker)

    assert list(FailedJob.objects.values_list("actor_name", flat=True)) == ["recent"]
    assert failed_jobs_purge_actor.queue_name == "maintenance"


def test_purge_runs_daily_with_the_log_cleanup_schedule():
    # One schedule prunes everything past retention (failed jobs among it), not three.
    [spec] = [s for s in SCHEDULES if s.name == "log-cleanup"]
    assert (spec.actor_name, spec.cron) == ("log_cleanup", "0 2 * * *")
    assert not [s for s in SCHEDULES if s.actor_name == "failed_jobs_purge"]
