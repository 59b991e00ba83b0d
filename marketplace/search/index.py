"""Writes of contractor search: the profiles' search entries and the categories' popularity.

An entry is rebuilt from the rows alone (idempotent), through the configured backend
(``marketplace.search.backends``):

- after a profile changes: :func:`search_index_profile_changed` (debounced, after commit);
- every night, all of them: the ``search_reindex`` actor walks the profiles in id chunks
  of ``SEARCH_REINDEX_CHUNK`` (:func:`search_reindex_step`, one short transaction each),
  re-enqueueing itself from the last id, then counts the categories' popularity
  (:func:`search_categories_count`).

Visibility, ratings and badges are read live by the PostgreSQL search, so a hidden profile
drops out at once; an external engine would hold them in its entries, which is why a
per-profile change of them calls :func:`search_index_profile_changed` too. A nightly bulk
recalculation (all ratings) need not: the ``search-reindex`` walk follows it.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from jobs.debounce import enqueue_debounced
from jobs.enqueue import enqueue_on_commit
from marketplace.models import ContractorProfile, Order, TradeCategory
from marketplace.search.backends import IndexBatch, search_backend

logger = logging.getLogger(__name__)

#: A category's popularity counts the orders of the last this many days.
POPULARITY_DAYS = 90


def search_index_profile_changed(*, profile_id: int) -> None:
    """Rebuild the search entry of profile ``profile_id`` soon after this transaction
    commits (nothing on rollback).

    Call it after a write to one contractor profile: its name, description, city,
    province, coordinates, trade categories — and its visibility, rating or badges
    (read live by the PostgreSQL backend, held in the entries of an external one).
    Debounced (``jobs.debounce``): a burst of changes to one profile rebuilds it once,
    ``SEARCH_REINDEX_DELAY_MS`` after the first, and that run sees every change committed
    before it starts; a rebuild whose sources did not change writes nothing. A nightly
    recalculation of every profile need not call it: the ``search-reindex`` walk follows.
    """
    from marketplace.tasks import search_profile_reindex

    enqueue_debounced(search_profile_reindex, profile_id,
                      delay_ms=settings.SEARCH_REINDEX_DELAY_MS)


def search_profiles_reindex_enqueue(*, profile_ids: list[int]) -> int:
    """Rebuild these profiles' entries now (one job each, after commit; not debounced):
    the admin's action. Returns how many were enqueued."""
    from marketplace.tasks import search_profile_reindex

    for profile_id in profile_ids:
        enqueue_on_commit(search_profile_reindex, profile_id)
    return len(profile_ids)


def search_profile_index(*, profile_id: int) -> bool:
    """Rebuild one profile's entry now. Returns whether it changed (``False`` too when
    the profile is gone)."""
    with transaction.atomic():
        return search_backend().index_profiles(profile_ids=[profile_id]).changed > 0


def chunk_size() -> int:
    """Profiles per step of the nightly walk (``SEARCH_REINDEX_CHUNK``)."""
    return settings.SEARCH_REINDEX_CHUNK


def search_reindex_step(*, after_id: int, size: int | None = None,
                        force: bool = False) -> IndexBatch:
    """Bring the entries of the next ``size`` profiles (default :func:`chunk_size`) with
    ids above ``after_id`` up to date, in one transaction: those whose sources changed
    are rebuilt (all of them with ``force``). Fewer than ``size`` read: the walk is over.
    """
    size = size or chunk_size()
    with transaction.atomic():
        batch = search_backend().index_profiles(after_id=after_id, limit=size, force=force)
    logger.info("search reindex step", extra={"after_id": after_id, "read": batch.read,
                                              "rebuilt": batch.changed})
    return batch


def search_categories_count(*, now: datetime | None = None) -> int:
    """Refresh every category's popularity from the rows: visible contractors listing it
    and orders of the last :data:`POPULARITY_DAYS` days taken by such a contractor
    (visible or not: the work was done). One statement; returns the categories updated."""
    now = now or timezone.now()
    categories, profiles, orders = (TradeCategory._meta.db_table,
                                    ContractorProfile._meta.db_table, Order._meta.db_table)
    listed = ("jsonb_array_elements_text(CASE jsonb_typeof(p.trade_categories) "
              "WHEN 'array' THEN p.trade_categories ELSE '[]' END) AS s(slug)")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"""
            WITH contractors AS (
                SELECT s.slug, count(*) FILTER (WHERE p.is_visible) AS visible
                FROM {profiles} p CROSS JOIN LATERAL {listed}
                GROUP BY s.slug
            ), recent AS (
                SELECT s.slug, count(*) AS orders
                FROM {orders} o
                JOIN {profiles} p ON p.user_id = o.contractor_id
                CROSS JOIN LATERAL {listed}
                WHERE o.created_at >= %(since)s
                GROUP BY s.slug
            )
            UPDATE {categories} t
            SET contractor_count = coalesce(c.visible, 0),
                recent_order_count = coalesce(r.orders, 0), counted_at = %(now)s
            FROM {categories} t2
            LEFT JOIN contractors c ON c.slug = t2.slug
            LEFT JOIN recent r ON r.slug = t2.slug
            WHERE t.id = t2.id
        """, {"since": now - timedelta(days=POPULARITY_DAYS), "now": now})
        return cursor.rowcount
