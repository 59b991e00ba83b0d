"""Staff get one email per failure streak of a critical or scheduled job."""

import pytest
from django.core import mail
from django.test import override_settings

from jobs.models import FailedJob
from jobs.queues import PermanentError, Queue, jobsite_actor
from tests.conftest import drain

BEHAVIOUR = {"fail": True}


@pytest.fixture(autouse=True)
def _reset():
    BEHAVIOUR["fail"] = True


@jobsite_actor(queue=Queue.PAYMENTS, actor_name="test_qfail_critical_sync", critical=True)
def critical_sync(account_id: int, email: str) -> None:
    if BEHAVIOUR["fail"]:
        raise PermanentError(f"sync refused for {email}")


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="test_qfail_nightly_report")
def nightly_report() -> None:
    if BEHAVIOUR["fail"]:
        raise PermanentError("report source unavailable")


def _alerts() -> list:
    return [m for m in mail.outbox if m.subject.startswith("[Jobsite] Job failing")]


@pytest.mark.django_db(transaction=True)
@override_settings(STAFF_ALERT_EMAILS=["ops@jobsite.test"])
def test_critical_actor_alerts_once_per_streak(broker, worker):
    mail.outbox = []
    # given a critical actor failing three times in a row
    for _ in range(3):
        critical_sync.send(9, "carol@example.com")
        drain(broker, worker)

    # then staff got exactly one email, naming the job but no personal data
    [alert] = _alerts()
    assert alert.to == ["ops@jobsite.test"]
    assert alert.subject == "[Jobsite] Job failing: test_qfail_critical_sync"
    assert "Queue: payments" in alert.body
    assert "Exception type: PermanentError" in alert.body
    first = FailedJob.objects.order_by("first_failed_at").first()
    assert f"/admin/jobs/failedjob/{first.pk}/change/" in alert.body
    assert "carol" not in alert.body and "example.com" not in alert.body
    assert FailedJob.objects.filter(actor_name="test_qfail_critical_sync").count() == 3

    # when it succeeds once, the streak ends; the next failure starts a new one
    BEHAVIOUR["fail"] = False
    critical_sync.send(9, "carol@example.com")
    drain(broker, worker)
    assert len(_alerts()) == 1
    BEHAVIOUR["fail"] = True
    critical_sync.send(9, "carol@example.com")
    drain(broker, worker)

    # then a second email went out
    assert len(_alerts()) == 2


@pytest.mark.django_db(transaction=True)
@override_settings(STAFF_ALERT_EMAILS=["ops@jobsite.test"])
def test_scheduled_job_alerts_once_per_streak_of_its_schedule(broker, worker):
    mail.outbox = []
    # given a schedule firing a job that fails twice
    for _ in range(2):
        nightly_report.send_with_options(schedule_id=77)
        drain(broker, worker)

    # then one email names the schedule
    [alert] = _alerts()
    assert "Schedule: #77" in alert.body
    assert FailedJob.objects.filter(schedule_id=77).count() == 2

    # and the same actor sent by hand (no schedule) does not alert: it is not critical
    nightly_report.send()
    drain(broker, worker)
    assert len(_alerts()) == 1

    # and a success of the schedule ends its streak
    BEHAVIOUR["fail"] = False
    nightly_report.send_with_options(schedule_id=77)
    drain(broker, worker)
    BEHAVIOUR["fail"] = True
    nightly_report.send_with_options(schedule_id=77)
    drain(broker, worker)
    assert len(_alerts()) == 2


@pytest.mark.django_db(transaction=True)
@override_settings(STAFF_ALERT_EMAILS=["ops@jobsite.test"])
def test_ordinary_failures_do_not_email(broker, worker):
    mail.outbox = []

    nightly_report.send()
    drain(broker, worker)

    assert FailedJob.objects.count() == 1
    assert _alerts() == []
