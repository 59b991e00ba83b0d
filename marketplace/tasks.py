"""Marketplace actors. Thin: ids in, one service call."""

from jobs.queues import Queue, jobsite_actor
from marketplace import services


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="contractor_rating_recalculate")
def contractor_rating_recalculate(contractor_id: int) -> None:
    services.contractor_rating_recalculate(contractor_id=contractor_id)
