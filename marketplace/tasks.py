"""Marketplace actors. Thin: ids in, one service call."""

from jobs.enqueue import enqueue_on_commit
from jobs.queues import MINUTE, Queue, jobsite_actor
from jobs.scheduling.specs import ScheduleSpec
from marketplace import ratings
from marketplace.search import index as search_index


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


# --- Search (marketplace.search) ----------------------------------------------------------


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="search_profile_reindex",
               time_limit=MINUTE)
def search_profile_reindex(profile_id: int) -> None:
    """Rebuild one profile's search entry (sent debounced by
    ``search_index_profile_changed``, or by the admin action)."""
    search_index.search_profile_index(profile_id=profile_id)


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="search_reindex", time_limit=5 * MINUTE)
def search_reindex(after_id: int = 0, force: bool = False) -> None:
    """Bring every profile's search entry with an id above ``after_id`` up to date (those
    whose sources changed; all with ``force``), one chunk per message: each run
    re-enqueues itself from the last id it reached, and the last one counts the
    categories' popularity. A retried message redoes its own chunk only."""
    step = search_index.search_reindex_step(after_id=after_id, force=force)
    if step.last_id is not None and step.read >= search_index.chunk_size():
        enqueue_on_commit(search_reindex, step.last_id, force)
    else:
        enqueue_on_commit(search_categories_count)


@jobsite_actor(queue=Queue.ANALYTICS, actor_name="search_categories_count",
               time_limit=5 * MINUTE)
def search_categories_count() -> None:
    """Refresh the trade categories' popularity counts."""
    search_index.search_categories_count()


SCHEDULES += [
    ScheduleSpec(name="search-reindex", actor_name="search_reindex", cron="30 2 * * *",
                 time_zone="America/Toronto",
                 description="Search: every contractor's search entry rebuilt (chunks by "
                             "id), then the categories' popularity counted."),
]
