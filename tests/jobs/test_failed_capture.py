"""Failures Dramatiq dead-letters without running the actor are recorded too."""

import dramatiq
import pytest

from jobs.models import FailedJob, FailedJobStatus
from tests.conftest import drain, wait_until


@pytest.mark.django_db(transaction=True)
def test_message_for_an_unknown_actor_is_recorded_and_cannot_be_retried(
    broker, worker, staff_client
):
    # given a message for an actor no worker knows (renamed or removed in a deploy)
    message = dramatiq.Message(queue_name="analytics", actor_name="test_qfail_renamed_actor",
                               args=(3,), kwargs={}, options={})
    broker.declare_queue("analytics")  # the worker consumes it even if no actor here does
    broker.enqueue(message)

    # when a worker receives it
    drain(broker, worker)
    wait_until(lambda: FailedJob.objects.filter(message_id=message.message_id).exists())

    # then it is dead-lettered and recorded, with no attempt made
    assert broker.client.zcard(f"{broker.namespace}:analytics.XQ") == 1
    failed = FailedJob.objects.get(message_id=message.message_id)
    assert failed.actor_name == "test_qfail_renamed_actor"
    assert failed.exception_type == "ActorNotFound"
    assert failed.attempts == 0

    # and an admin retry explains why it cannot be retried, leaving the row as it was
    response = staff_client.post("/admin/jobs/failedjob/", {
        "action": "retry_selected", "_selected_action": [failed.pk]}, follow=True)
    assert "its actor is unknown" in response.content.decode()
    failed.refresh_from_db()
    assert failed.status == FailedJobStatus.FAILED
