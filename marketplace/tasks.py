"""Marketplace actors. Thin: ids in, one service call."""

from jobs.enqueue import enqueue_on_commit
from jobs.queues import Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from marketplace import ratings


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="contractor_rating_recalculate")
def contractor_rating_recalculate(contractor_id: int) -> None:
    """Rating, badges and visibility of one contractor's profile (debounced by
    ``ratings.rating_recalculate_later``)."""
    ratings.contractor_rating_recalculate(contractor_id=contractor_id)


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="client_rating_recalculate")
def client_rating_recalculate(client_id: int) -> None:
    """One client's rating (debounced by ``ratings.rating_recalculate_later``)."""
    ratings.client_rating_recalculate(client_id=client_id)


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="ratings_recalculate")
def ratings_recalculate(run_id: int | None = None) -> None:
    """Start (no ``run_id``) or go on with a full recalculation: chunks for up to
    ``ratings.MESSAGE_BUDGET_S`` seconds, then the next message from the run's last id."""
    if run_id is None:
        run_id = ratings.rating_run_start().pk
    if ratings.rating_run_continue(run_id):
        enqueue_on_commit(ratings_recalculate, run_id)


SCHEDULES = [
    ScheduleSpec(name="ratings-recalculate", actor_name="ratings_recalculate",
                 cron="30 1 * * *", time_zone="America/Toronto",
                 description="Ratings: every contractor's and client's rating (Bayesian "
                             "average on fresh platform means), badges and profile "
                             "visibility, recomputed in chunks."),
]
