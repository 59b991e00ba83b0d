"""Failed jobs end to end: retries exhausted → FailedJob → admin retry / discard."""

import threading

import pytest
from django.db import connection

from audit.models import AuditLog
from jobs.models import FailedJob, FailedJobStatus
from jobs.queues import Queue, jobsite_actor
from marketplace.models import User
from tests.conftest import drain

CHANGELIST = "/admin/jobs/failedjob/"
_lock = threading.Lock()
BEHAVIOUR = {"fail": True}
RUNS: list[tuple[tuple, dict, bool]] = []


@pytest.fixture(autouse=True)
def _reset():
    BEHAVIOUR["fail"] = True
    RUNS.clear()


@jobsite_actor(queue=Queue.PUSH, actor_name="test_qfail_push_to_device", max_retries=2,
               min_backoff=1, max_backoff=5)
def push_to_device(user_id: int, *, device_token: str, badge: int = 0) -> None:
    with _lock:
        RUNS.append(((user_id,), {"device_token": device_token, "badge": badge},
                     BEHAVIOUR["fail"]))
    if BEHAVIOUR["fail"]:
        raise RuntimeError(f"push rejected for token={device_token} owner jane@example.com")


def _post_action(client, action: str, jobs: list[FailedJob]):
    return client.post(CHANGELIST, {"action": action,
                                    "_selected_action": [job.pk for job in jobs]})


@pytest.mark.django_db(transaction=True)
def test_exhausted_job_is_recorded_then_retried_from_admin(broker, worker, staff_client):
    # given a push job that fails on every attempt
    token = "dvc_9f8e7d6c5b4a39281706f5e4d3c2b1a0"
    message = push_to_device.send(41, device_token=token, badge=3)
    drain(broker, worker)

    # then it is in the failed-job list with its story, personal data scrubbed
    failed = FailedJob.objects.get(message_id=message.message_id)
    assert failed.status == FailedJobStatus.FAILED
    assert failed.actor_name == "test_qfail_push_to_device"
    assert failed.queue_name == "push"
    assert failed.attempts == 3
    assert failed.exception_type == "RuntimeError"
    assert failed.exception_message == "push rejected for token=[argument] owner [email]"
    assert "push_to_device" in failed.traceback
    assert "raise RuntimeError" in failed.traceback
    assert token not in failed.traceback and "jane@example.com" not in failed.traceback
    assert failed.first_failed_at < failed.last_failed_at
    # and its arguments are encrypted at rest
    with connection.cursor() as cursor:
        cursor.execute("SELECT payload FROM jobs_failedjob WHERE id = %s", [failed.pk])
        [stored] = cursor.fetchone()
    assert token not in stored and '"badge"' not in stored

    # and staff see it, arguments redacted
    page = staff_client.get(f"{CHANGELIST}{failed.pk}/change/").content.decode()
    assert "test_qfail_push_to_device" in page
    assert "&lt;int&gt;" in page and "device_token" in page
    assert token not in page

    # when staff retry it from admin after the provider recovered
    BEHAVIOUR["fail"] = False
    RUNS.clear()
    response = _post_action(staff_client, "retry_selected", [failed])
    assert response.status_code == 302
    drain(broker, worker)

    # then the original call ran again, once, successfully, under a new message id
    assert RUNS == [((41,), {"device_token": token, "badge": 3}, False)]
    failed.refresh_from_db()
    staff = User.objects.get(email="staff@example.test")
    assert failed.status == FailedJobStatus.RETRIED
    assert failed.retried_by == staff
    assert failed.retried_at is not None
    assert failed.retry_message_id and failed.retry_message_id != failed.message_id
    assert not FailedJob.objects.filter(message_id=failed.retry_message_id).exists()
    audit = AuditLog.objects.get(action="failed_job.retried")
    assert audit.actor == staff
    assert audit.resource_id == str(failed.pk)
    assert audit.metadata["retry_message_id"] == failed.retry_message_id

    # and retrying it again does nothing: it is no longer failed
    RUNS.clear()
    _post_action(staff_client, "retry_selected", [failed])
    drain(broker, worker)
    assert RUNS == []


@pytest.mark.django_db(transaction=True)
def test_retried_job_gets_a_fresh_retry_budget(broker, worker, staff_client):
    # given a job that failed after all its attempts
    message = push_to_device.send(7, device_token="short")
    drain(broker, worker)
    failed = FailedJob.objects.get(message_id=message.message_id)

    # when it is retried while still failing
    RUNS.clear()
    _post_action(staff_client, "retry_selected", [failed])
    drain(broker, worker)

    # then the retry had all three attempts again and failed as a new record
    failed.refresh_from_db()
    assert len(RUNS) == 3
    again = FailedJob.objects.get(message_id=failed.retry_message_id)
    assert again.attempts == 3
    assert again.status == FailedJobStatus.FAILED


@pytest.mark.django_db(transaction=True)
def test_bulk_discard_keeps_the_records(broker, worker, staff_client):
    # given two failed jobs
    first = push_to_device.send(1, device_token="a")
    second = push_to_device.send(2, device_token="b")
    drain(broker, worker)
    jobs = list(FailedJob.objects.filter(message_id__in=[first.message_id, second.message_id]))
    assert len(jobs) == 2

    # when staff discard both at once
    RUNS.clear()
    response = _post_action(staff_client, "discard_selected", jobs)

    # then both are kept, marked discarded by that user, audited, and nothing ran
    assert response.status_code == 302
    staff = User.objects.get(email="staff@example.test")
    for job in FailedJob.objects.filter(pk__in=[j.pk for j in jobs]):
        assert job.status == FailedJobStatus.DISCARDED
        assert job.discarded_by == staff
        assert job.discarded_at is not None
    assert AuditLog.objects.filter(action="failed_job.discarded", actor=staff).count() == 2
    drain(broker, worker)
    assert RUNS == []

    # and a discarded job cannot be retried
    _post_action(staff_client, "retry_selected", jobs)
    drain(broker, worker)
    assert RUNS == []
    assert FailedJob.objects.filter(status=FailedJobStatus.RETRIED).count() == 0


@pytest.mark.django_db(transaction=True)
def test_bulk_retry_re_enqueues_each_job(broker, worker, staff_client):
    messages = [push_to_device.send(n, device_token=f"t{n}") for n in (10, 11)]
    drain(broker, worker)
    jobs = list(FailedJob.objects.filter(message_id__in=[m.message_id for m in messages]))

    BEHAVIOUR["fail"] = False
    RUNS.clear()
    _post_action(staff_client, "retry_selected", jobs)
    drain(broker, worker)

    assert sorted(run[0][0] for run in RUNS) == [10, 11]
    assert FailedJob.objects.filter(status=FailedJobStatus.RETRIED).count() == 2
    assert AuditLog.objects.filter(action="failed_job.retried").count() == 2
