"""Ratings of contractors and clients, the contractors' badges and their profiles'
visibility, computed in the database from the reviews and orders.

**The formula** (written here only). For the ``n`` live reviews of one kind about one user,
with ratings summing to ``s``:

    average  = s / n                  (0 without reviews; stored rounded to 2 places)
    bayesian = (C·m + s) / (C + n)    (stored rounded to 4 places)

``m`` is the platform-wide mean of that kind of review (reviews of contractors and reviews
of clients separately), computed at the start of each full run and stored on its
:class:`~marketplace.models.RatingRun`; recalculations between two runs use the latest
run's ``m`` (before the first run, ``m`` is computed on the spot; with no review at all it
is :data:`PRIOR_MEAN_WITHOUT_REVIEWS`). ``C`` is ``RATING_BAYESIAN_CONFIDENCE`` (default
10): how many reviews' worth of the platform's mean every rating starts from. Few reviews
keep a rating near ``m``, many move it to the user's own average, so one 5★ review ranks
below fifty averaging 4.8 whenever ``m < (235 − 10/C) / 49`` (4.775 with C = 10).

**Ranking** (:data:`RATING_ORDER`): Bayesian average (4 places) descending, then the
number of reviews descending (more evidence first), then the oldest profile first.

**When.** A review written, edited or removed asks for its subject's recalculation through
:func:`rating_recalculate_later` (debounced: a burst for one user runs once, after
``RATING_RECALC_DEBOUNCE_SECONDS``); the nightly ``ratings-recalculate`` run recomputes
everyone, in chunks of ``RATING_RECALC_CHUNK_SIZE`` ids, one short transaction per chunk,
a message re-enqueueing itself every :data:`MESSAGE_BUDGET_S` seconds from the run's last
id.

**One statement serves both**: the same SQL computes a single profile and a chunk of them,
and writes only rows whose figures, badges or visibility changed. The rows are locked
before the figures are read (each statement of a transaction reads afresh), so two
recalculations of one profile write in the order they read, and a badge another app writes
under the same lock (payments' ``pro``) is never lost.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.debounce import enqueue_debounced
from marketplace.badges import BADGES, COMPUTED_BADGES, FAST_RESPONDER_WINDOW_DAYS, HIDING_RULES
from marketplace.models import (
    ClientRating,
    ContractorProfile,
    Order,
    OrderStatus,
    RatingRun,
    Review,
    ReviewSubject,
    User,
)

logger = logging.getLogger("marketplace.ratings")

#: How profiles rank by rating (listings, search): see the module docstring.
RATING_ORDER = ("-rating_bayesian", "-rating_count", "pk")
#: Seconds of chunks one message of the full run goes through before it re-enqueues
#: itself: with a message per chunk, each waited up to a second for the idle worker's next
#: poll (Dramatiq's Redis consumer backs off), a third of the run's time.
MESSAGE_BUDGET_S = 10.0
#: ``m`` while no review of a kind exists yet: the middle of the 1–5 scale.
PRIOR_MEAN_WITHOUT_REVIEWS = Decimal("3.0000")

PROFILE = ContractorProfile._meta.db_table
USER = User._meta.db_table
REVIEW = Review._meta.db_table
ORDER = Order._meta.db_table
CLIENT_RATING = ClientRating._meta.db_table


@dataclass(frozen=True)
class Priors:
    confidence: Decimal  # C
    contractor: Decimal  # m of reviews of contractors
    client: Decimal  # m of reviews of clients


def confidence() -> Decimal:
    return Decimal(str(settings.RATING_BAYESIAN_CONFIDENCE))


def priors_compute() -> dict[str, tuple[Decimal, int]]:
    """The platform-wide (mean, count) of live reviews of each subject role."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT subject_role, round(avg(rating), 4), count(*) FROM {REVIEW} "
                       "GROUP BY subject_role")
        found = {role: (mean, count) for role, mean, count in cursor.fetchall()}
    return {role: found.get(role, (PRIOR_MEAN_WITHOUT_REVIEWS, 0))
            for role in ReviewSubject.values}


def priors_current() -> Priors:
    """``C`` from the settings and each ``m`` of the latest full run (computed now before
    the first run)."""
    run = RatingRun.objects.order_by("-pk").first()
    if run is not None:
        return Priors(confidence(), run.contractor_prior_mean, run.client_prior_mean)
    computed = priors_compute()
    return Priors(confidence(), computed[ReviewSubject.CONTRACTOR][0],
                  computed[ReviewSubject.CLIENT][0])


# --- Contractors: rating, badges, visibility -------------------------------------------------

def _jit_off(cursor) -> None:
    """No JIT compilation for the rest of this transaction: a chunk's estimated cost is
    past ``jit_above_cost``, and compiling took 3 s of a 6 s chunk (measured), for a
    statement that runs once."""
    cursor.execute("SET LOCAL jit = off")


def _contractor_calc_sql(where: str) -> str:
    """``WITH fig AS (…), calc AS (…)``: the figures of the profiles ``p`` matching
    ``where``, and what the rules of ``marketplace.badges`` make of them."""
    badge_cases = ", ".join(f"CASE WHEN {badge.sql} THEN '{badge.name}' END"
                            for badge in BADGES if badge.sql)
    reason = " ".join(f"WHEN {rule.sql} THEN '{rule.reason.value}'" for rule in HIDING_RULES)
    return f"""
        WITH fig AS (
            SELECT p.id, p.badges AS old_badges, p.is_visible AS old_visible,
                   r.n AS review_count, coalesce(r.s, 0) AS review_sum,
                   CASE WHEN r.n > 0 THEN round(r.s::numeric / r.n, 2) ELSE 0 END AS average,
                   round((%(c)s * %(m)s + coalesce(r.s, 0)) / (%(c)s + r.n), 4) AS bayesian,
                   j.n AS completed_jobs, a.n AS accepted_recent,
                   a.median_s AS response_median_s, u.is_active,
                   CASE WHEN jsonb_typeof(p.trade_categories) = 'array'
                        THEN jsonb_array_length(p.trade_categories) > 0
                        ELSE false END AS has_trade,
                   p.city, p.province
            FROM {PROFILE} p
            JOIN {USER} u ON u.id = p.user_id
            CROSS JOIN LATERAL (
                SELECT count(*) AS n, sum(rating) AS s FROM {REVIEW}
                WHERE subject_id = p.user_id AND subject_role = '{ReviewSubject.CONTRACTOR}'
            ) r
            CROSS JOIN LATERAL (
                SELECT count(*) AS n FROM {ORDER}
                WHERE contractor_id = p.user_id AND status = '{OrderStatus.COMPLETED}'
            ) j
            CROSS JOIN LATERAL (
                SELECT count(*) AS n, percentile_cont(0.5) WITHIN GROUP
                           (ORDER BY extract(epoch FROM accepted_at - created_at)) AS median_s
                FROM {ORDER} WHERE contractor_id = p.user_id AND accepted_at >= %(since)s
            ) a
            WHERE {where}
        ), calc AS (
            SELECT fig.*,
                   (coalesce(fig.old_badges, '[]'::jsonb) - %(computed)s::text[])
                   || to_jsonb(array_remove(ARRAY[{badge_cases}]::text[], NULL)) AS new_badges,
                   CASE {reason} ELSE '' END AS hidden_reason
            FROM fig
        )"""


def _contractor_params(priors: Priors, **extra: Any) -> dict[str, Any]:
    now = timezone.now()
    return {"c": priors.confidence, "m": priors.contractor, "computed": list(COMPUTED_BADGES),
            "since": now - timedelta(days=FAST_RESPONDER_WINDOW_DAYS), "now": now, **extra}


def _contractors_recalculate(where: str, params: dict[str, Any]) -> dict[str, int]:
    """Lock the profiles matching ``where``, then write the figures, badges and visibility
    of those whose values changed. Inside a transaction. Returns counts."""
    with connection.cursor() as cursor:
        _jit_off(cursor)
        cursor.execute(f"SELECT p.id FROM {PROFILE} p WHERE {where} ORDER BY p.id "
                       "FOR NO KEY UPDATE", params)
        locked = cursor.rowcount
        cursor.execute(_contractor_calc_sql(where) + f"""
            UPDATE {PROFILE} p
            SET rating_count = c.review_count, rating_average = c.average,
                rating_bayesian = c.bayesian, badges = c.new_badges,
                hidden_reason = c.hidden_reason, is_visible = c.hidden_reason = '',
                rating_updated_at = %(now)s
            FROM calc c
            WHERE p.id = c.id
              AND (p.rating_count, p.rating_average, p.rating_bayesian, p.badges,
                   p.hidden_reason, p.is_visible)
                  IS DISTINCT FROM (c.review_count, c.average, c.bayesian, c.new_badges,
                                    c.hidden_reason, c.hidden_reason = '')
            RETURNING c.old_visible, p.is_visible""", params)
        changed = cursor.fetchall()
    return {"profiles": locked, "profiles_changed": len(changed),
            "hidden": sum(1 for old, new in changed if old and not new),
            "shown": sum(1 for old, new in changed if new and not old)}


def contractor_rating_recalculate(*, contractor_id: int) -> ContractorProfile | None:
    """Recompute the rating, badges and visibility of user ``contractor_id``'s profile.

    Idempotent: everything derives from the rows. Returns ``None`` when the contractor has
    no profile (deleted since the job was queued).
    """
    params = _contractor_params(priors_current(), user_id=contractor_id)
    with transaction.atomic():
        counts = _contractors_recalculate("p.user_id = %(user_id)s", params)
    if not counts["profiles"]:
        return None
    return ContractorProfile.objects.get(user_id=contractor_id)


def contractor_figures(*, profile_id: int) -> dict[str, Any] | None:
    """What a recalculation of profile ``profile_id`` would compute now (its figures,
    badges and hidden reason), read only: the admin shows it beside the stored values."""
    params = _contractor_params(priors_current(), profile_id=profile_id)
    with transaction.atomic(), connection.cursor() as cursor:
        _jit_off(cursor)
        cursor.execute(_contractor_calc_sql("p.id = %(profile_id)s") + " SELECT * FROM calc",
                       params)
        row = cursor.fetchone()
        if row is None:
            return None
        figures = dict(zip([col.name for col in cursor.description], row, strict=True))
    for name in ("old_badges", "new_badges"):  # Django reads jsonb of raw SQL as text
        if isinstance(figures[name], str):
            figures[name] = json.loads(figures[name])
    figures.update(confidence=params["c"], prior_mean=params["m"])
    return figures


# --- Clients: rating --------------------------------------------------------------------

def _clients_recalculate(subjects: str, rows: str, params: dict[str, Any]) -> dict[str, int]:
    """Write the ratings of the clients whose reviews match ``subjects`` (a condition on
    ``subject_id``) and remove the rows matching ``rows`` (a condition on ``cr.user_id``,
    the same users) whose reviews are all gone. Inside a transaction. Returns counts."""
    with connection.cursor() as cursor:
        _jit_off(cursor)
        # Existing rows are locked before the figures are read (see the module docstring);
        # a client's first row has nothing to lock yet: its insert is an upsert.
        cursor.execute(f"SELECT cr.user_id FROM {CLIENT_RATING} cr WHERE {rows} "
                       "ORDER BY cr.user_id FOR NO KEY UPDATE", params)
        cursor.execute(f"""
            WITH agg AS (
                SELECT subject_id AS user_id, count(*) AS n, sum(rating) AS s FROM {REVIEW}
                WHERE subject_role = '{ReviewSubject.CLIENT}' AND {subjects}
                GROUP BY subject_id
            ), calc AS (
                SELECT user_id, n, round(s::numeric / n, 2) AS average,
                       round((%(c)s * %(m)s + s) / (%(c)s + n), 4) AS bayesian
                FROM agg
            ), written AS (
                INSERT INTO {CLIENT_RATING} AS cr
                    (user_id, rating_count, rating_average, rating_bayesian, rating_updated_at)
                SELECT user_id, n, average, bayesian, %(now)s FROM calc
                ON CONFLICT (user_id) DO UPDATE
                SET rating_count = EXCLUDED.rating_count,
                    rating_average = EXCLUDED.rating_average,
                    rating_bayesian = EXCLUDED.rating_bayesian,
                    rating_updated_at = EXCLUDED.rating_updated_at
                WHERE (cr.rating_count, cr.rating_average, cr.rating_bayesian)
                      IS DISTINCT FROM (EXCLUDED.rating_count, EXCLUDED.rating_average,
                                        EXCLUDED.rating_bayesian)
                RETURNING 1
            ), removed AS (
                DELETE FROM {CLIENT_RATING} cr
                WHERE {rows} AND NOT EXISTS (SELECT 1 FROM calc WHERE calc.user_id = cr.user_id)
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM removed)""", params)
        written, removed = cursor.fetchone()
    return {"clients_changed": written, "clients_removed": removed}


def _client_params(priors: Priors, **extra: Any) -> dict[str, Any]:
    return {"c": priors.confidence, "m": priors.client, "now": timezone.now(), **extra}


def client_rating_recalculate(*, client_id: int) -> ClientRating | None:
    """Recompute user ``client_id``'s rating as a client; ``None`` when they have no
    review (any row is removed). Idempotent."""
    params = _client_params(priors_current(), user_id=client_id)
    with transaction.atomic():
        _clients_recalculate("subject_id = %(user_id)s", "cr.user_id = %(user_id)s", params)
    return ClientRating.objects.filter(user_id=client_id).first()


# --- Debounced recalculation of one subject -------------------------------------------------

def rating_recalculate_later(*, subject_id: int, role: str, delay_ms: int | None = None) -> None:
    """After commit, ask for user ``subject_id``'s rating as ``role`` (a
    :class:`~marketplace.models.ReviewSubject`) to be recalculated: once per burst, about
    ``RATING_RECALC_DEBOUNCE_SECONDS`` (or ``delay_ms``) after its first call."""
    from marketplace.tasks import client_rating_recalculate as client_task
    from marketplace.tasks import contractor_rating_recalculate as contractor_task

    actor = contractor_task if role == ReviewSubject.CONTRACTOR else client_task
    if delay_ms is None:
        delay_ms = round(settings.RATING_RECALC_DEBOUNCE_SECONDS * 1000)
    enqueue_debounced(actor, subject_id, delay_ms=delay_ms)


# --- The full run ------------------------------------------------------------------------

def rating_run_start() -> RatingRun:
    """Start a full recalculation: compute and store the priors; a run still going is
    abandoned (its next step stops), so one run at a time walks the profiles."""
    with transaction.atomic():
        now = timezone.now()
        RatingRun.objects.filter(status=RatingRun.Status.RUNNING).update(
            status=RatingRun.Status.ABANDONED, finished_at=now)
        priors = priors_compute()
        contractor, client = priors[ReviewSubject.CONTRACTOR], priors[ReviewSubject.CLIENT]
        run = RatingRun.objects.create(
            confidence=confidence(), contractor_prior_mean=contractor[0],
            contractor_reviews=contractor[1], client_prior_mean=client[0],
            client_reviews=client[1], started_at=now)
    logger.info("rating run started", extra={"run_id": run.pk})
    return run


def _next_upto(table: str, after: int, size: int) -> int | None:
    """The id that ends the chunk of ``size`` rows of ``table`` after id ``after``."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT max(id) FROM (SELECT id FROM {table} WHERE id > %s "
                       "ORDER BY id LIMIT %s) chunk", [after, size])
        return cursor.fetchone()[0]


def rating_run_step(run_id: int) -> bool:
    """Recalculate the next chunk of run ``run_id`` in one transaction: contractor
    profiles by profile id, then client ratings by user id. Returns whether more is left.

    Idempotent: the run's row (locked) says where it is; a repeated message goes on from
    there, and a run that is over (done, abandoned, gone) does nothing.
    """
    size = settings.RATING_RECALC_CHUNK_SIZE
    with transaction.atomic():
        run = RatingRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.status != RatingRun.Status.RUNNING:
            return False
        priors = Priors(run.confidence, run.contractor_prior_mean, run.client_prior_mean)
        counts: dict[str, int] = {}
        if run.phase == RatingRun.Phase.CONTRACTORS:
            upto = _next_upto(PROFILE, run.last_id, size)
            if upto is None:
                run.phase, run.last_id = RatingRun.Phase.CLIENTS, 0
            else:
                counts = _contractors_recalculate(
                    "p.id > %(after)s AND p.id <= %(upto)s",
                    _contractor_params(priors, after=run.last_id, upto=upto))
        if run.phase == RatingRun.Phase.CLIENTS:
            upto = _next_upto(USER, run.last_id, size)
            if upto is None:
                run.status, run.finished_at = RatingRun.Status.DONE, timezone.now()
            else:
                counts = _clients_recalculate(
                    "subject_id > %(after)s AND subject_id <= %(upto)s",
                    "cr.user_id > %(after)s AND cr.user_id <= %(upto)s",
                    _client_params(priors, after=run.last_id, upto=upto))
        if upto is not None:
            run.last_id = upto
        for name, value in counts.items():
            run.counts[name] = run.counts.get(name, 0) + value
        run.save(update_fields=["status", "phase", "last_id", "counts", "finished_at"])
    if run.status == RatingRun.Status.DONE:
        logger.info("rating run done", extra={
            "run_id": run.pk, **run.counts,
            "seconds": round((run.finished_at - run.started_at).total_seconds(), 1)})
        return False
    return True


def rating_run_continue(run_id: int) -> bool:
    """Run chunks of run ``run_id`` (each its own transaction, :func:`rating_run_step`)
    until it is over or :data:`MESSAGE_BUDGET_S` has passed. Returns whether more is
    left."""
    deadline = time.monotonic() + MESSAGE_BUDGET_S
    while rating_run_step(run_id):
        if time.monotonic() >= deadline:
            return True
    return False
