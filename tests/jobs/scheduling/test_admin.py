"""Staff edit schedules in admin: invalid input is a form error, Run now only enqueues."""

import dramatiq
import pytest
from django.urls import reverse

from audit.models import AuditLog
from jobs.models import Schedule, ScheduleOutcome

ADD_URL = reverse("admin:jobs_schedule_add")


def form_data(**overrides) -> dict:
    data = {"name": "nightly-prune", "description": "", "actor_name": "schedule_executions_prune",
            "kwargs": "{}", "cron": "30 3 * * *", "time_zone": "UTC", "enabled": "on",
            "misfire_grace_seconds": "3600"}
    data.update(overrides)
    return data


def errors_of(response) -> dict:
    assert response.status_code == 200, "the form was accepted"
    return response.context["adminform"].form.errors


@pytest.mark.django_db
def test_valid_schedule_is_saved_with_description_and_next_run(staff_client):
    response = staff_client.post(ADD_URL, form_data(cron=" 0  5 * * 0 ",
                                                    time_zone="America/Toronto",
                                                    kwargs='{"days": 7}',
                                                    actor_name="performance_report"))

    assert response.status_code == 302
    schedule = Schedule.objects.get(name="nightly-prune")
    assert (schedule.cron, schedule.time_zone, schedule.kwargs) == (
        "0 5 * * 0", "America/Toronto", {"days": 7})
    page = staff_client.get(reverse("admin:jobs_schedule_change", args=[schedule.pk]))
    assert "At 05:00, only on Sunday" in page.content.decode()
    assert "EST" in page.content.decode() or "EDT" in page.content.decode()  # next run shown
    assert AuditLog.objects.filter(action="schedule.create", resource_id=str(schedule.pk)
                                   ).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(("cron", "message"), [
    ("* * * *", "exactly 5 fields"),
    ("0 0 * * * *", "exactly 5 fields"),
    ("61 * * * *", "not a valid cron expression"),
    ("0 3 31 2 mon-", "not a valid cron expression"),
    ("0 0 31 2 *", "never matches a real date"),
])
def test_invalid_cron_is_a_form_error(staff_client, cron, message):
    errors = errors_of(staff_client.post(ADD_URL, form_data(cron=cron)))

    assert message in errors["cron"][0]
    assert not Schedule.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("zone", ["Toronto", "America/Torontoo", "EST+5"])
def test_invalid_time_zone_is_a_form_error(staff_client, zone):
    errors = errors_of(staff_client.post(ADD_URL, form_data(time_zone=zone)))

    assert errors["time_zone"] == [f"{zone} is not an IANA time zone."]
    assert not Schedule.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(("actor", "kwargs", "message"), [
    ("schedule_executions_prune", '{"days": 3}', "unexpected keyword argument 'days'"),
    ("performance_report", '{"days": 7, "extra": 1}', "unexpected keyword argument 'extra'"),
    ("performance_report", "[7]", "JSON object"),
    ("performance_report", "{not json", "Enter a valid JSON"),
])
def test_kwargs_not_fitting_the_actor_are_a_form_error(staff_client, actor, kwargs, message):
    errors = errors_of(staff_client.post(ADD_URL, form_data(actor_name=actor, kwargs=kwargs)))

    assert message in " ".join(errors["kwargs"])
    assert not Schedule.objects.exists()


@pytest.mark.django_db
def test_unknown_actor_is_a_form_error(staff_client):
    errors = errors_of(staff_client.post(ADD_URL, form_data(actor_name="no_such_actor")))

    assert "no_such_actor is not one of the available choices" in errors["actor_name"][0]


@pytest.mark.django_db
def test_zero_misfire_grace_is_a_form_error(staff_client):
    errors = errors_of(staff_client.post(ADD_URL, form_data(misfire_grace_seconds="0")))

    assert errors["misfire_grace_seconds"] == ["The misfire grace is at least 1 second."]


@pytest.mark.django_db(transaction=True)
def test_run_now_enqueues_with_schedule_id_and_runs_nothing_in_the_request(staff_client,
                                                                            broker):
    schedule = Schedule.objects.create(name="perf", actor_name="performance_report",
                                       kwargs={"days": 1}, cron="0 5 * * 0")

    response = staff_client.post(reverse("admin:jobs_schedule_changelist"),
                                 {"action": "run_now", "_selected_action": [schedule.pk]})

    assert response.status_code == 302
    raw = broker.client.hvals(f"{broker.namespace}:analytics.msgs")
    assert len(raw) == 1
    message = dramatiq.Message.decode(raw[0])
    assert (message.actor_name, message.kwargs, message.options["schedule_id"]) == (
        "performance_report", {"days": 1}, schedule.pk)
    schedule.refresh_from_db()
    assert schedule.last_outcome == ScheduleOutcome.ENQUEUED
    assert schedule.last_message_id == message.message_id
    from jobs.models import OperationsReport
    assert not OperationsReport.objects.exists()  # the report did not run in the request
    assert AuditLog.objects.filter(action="schedule.run_now").count() == 1


@pytest.mark.django_db
def test_staff_edit_of_a_default_marks_it_customized(staff_client):
    schedule = Schedule.objects.create(name="log-cleanup", actor_name="log_cleanup",
                                       cron="0 2 * * *", time_zone="America/Toronto",
                                       is_default=True, default_fingerprint="x")
    url = reverse("admin:jobs_schedule_change", args=[schedule.pk])

    response = staff_client.post(url, form_data(name="log-cleanup", actor_name="log_cleanup",
                                                cron="0 3 * * *",
                                                time_zone="America/Toronto"))

    assert response.status_code == 302
    schedule.refresh_from_db()
    assert (schedule.cron, schedule.is_customized) == ("0 3 * * *", True)
