"""The boundary between Jobsite and the engine that answers contractor searches.

:class:`SearchBackend` is what the rest of the code sees: ``index_profiles`` (write the
entries of some profiles, from the database's rows) and ``search`` (answer one
:class:`SearchQuery`). ``SEARCH_BACKEND`` names the class (a dotted path);
:class:`PostgresSearchBackend` is the one built: the entry is ``ContractorProfile``'s own
columns, a ``tsvector`` with a GIN index. An external engine (OpenSearch) would be a second
class here: ``index_profiles`` reads the same document (:data:`DOCUMENT_PARTS`) and bulk-
upserts it, ``search`` sends a bool query; README "Search" says how. Nothing else changes:
the jobs, the selector and the admin only talk to :func:`search_backend`.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Protocol

from django.conf import settings
from django.db import connection
from django.utils.module_loading import import_string

from marketplace.models import City, ContractorProfile, TradeCategory

#: The badge of a Pro subscription (``payments.models.subscriptions.PRO_BADGE``; payments
#: builds on marketplace, so it is named again here, and a test holds the two equal): its
#: profiles come first among the matches.
PRO_BADGE = "pro"

#: What a profile's search entry is made of, by weight (A counts most; README "Search").
DOCUMENT_PARTS = {
    "A": "the business name",
    "B": "the trade categories: each one's slug, English and French names and search terms",
    "C": "the city",
    "D": "the description",
}
#: The text search configurations (migration 0005): every part is indexed in both.
CONFIGS = {"en": "jobsite_en", "fr": "jobsite_fr"}
EARTH_RADIUS_KM = 6371.0


@dataclass(frozen=True)
class Place:
    """A point to search near, with the radius in km."""

    latitude: float
    longitude: float
    radius_km: float


@dataclass(frozen=True)
class SearchQuery:
    """One search, already checked (``marketplace.search.selectors`` builds it)."""

    text: str  # may be empty: then only the filters apply
    near: Place | None = None
    category: str | None = None  # a TradeCategory slug
    language: str | None = None  # "en", "fr", or None for both
    limit: int = 20
    offset: int = 0


@dataclass(frozen=True)
class ContractorHit:
    profile_id: int
    user_id: int
    business_name: str
    city: str
    province: str
    trade_categories: list
    rating_average: Decimal
    rating_count: int
    badges: list
    rank: float  # 0 for a search without text
    distance_km: float | None  # with ``near`` only


@dataclass(frozen=True)
class IndexBatch:
    """What one ``index_profiles`` call did: the profiles it read (``last_id`` the highest
    id among them, ``None`` if none) and how many entries it changed."""

    read: int
    changed: int
    last_id: int | None


class SearchBackend(Protocol):
    def index_profiles(self, *, profile_ids: Sequence[int] | None = None, after_id: int = 0,
                       limit: int | None = None) -> IndexBatch:
        """Rebuild the entries of ``profile_ids``, or of the ``limit`` profiles with the
        lowest ids above ``after_id``. Idempotent: derived from the rows alone."""

    def search(self, query: SearchQuery) -> list[ContractorHit]:
        """Visible profiles only, best first."""


@lru_cache(maxsize=4)
def _backend(path: str) -> SearchBackend:
    return import_string(path)()


def search_backend() -> SearchBackend:
    """The configured backend (``SEARCH_BACKEND``)."""
    return _backend(settings.SEARCH_BACKEND)


def _json(value):
    # Django reads jsonb as text and parses it in the field; raw SQL gets the text.
    return json.loads(value) if isinstance(value, str) else value


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _folded(sql: str) -> str:
    return f"lower(jobsite_unaccent({sql}))"


def _weighted(part: str, weight: str) -> str:
    # Folded once, analysed in both languages: "électricien" and "electricien" give the
    # same lexemes, stemmed the English and the French way.
    return (f"setweight(to_tsvector('{CONFIGS['en']}', {part}) || "
            f"to_tsvector('{CONFIGS['fr']}', {part}), '{weight}')")


class PostgresSearchBackend:
    """PostgreSQL full-text search on ``ContractorProfile.search_vector`` (GIN), "near"
    by a bounding box on a GiST index of the entry's point, then the haversine distance."""

    def _index_sql(self, where: str, limit: bool) -> str:
        profiles, cities, categories = (_table(ContractorProfile), _table(City),
                                        _table(TradeCategory))
        # Each category listed: its labels when known, else its slug as words.
        trades = f"""(SELECT string_agg(coalesce(c.slug || ' ' || c.name_en || ' ' ||
                                                 c.name_fr || ' ' || c.search_terms,
                                                 translate(s.slug, '-_', '  ')), ' ')
                      FROM jsonb_array_elements_text(CASE jsonb_typeof(p.trade_categories)
                           WHEN 'array' THEN p.trade_categories ELSE '[]' END) AS s(slug)
                      LEFT JOIN {categories} c ON c.slug = s.slug)"""
        document = " || ".join(_weighted(part, weight) for part, weight in (
            ("name", "A"), ("trades", "B"), ("city", "C"), ("description", "D")))
        own = "p.latitude IS NOT NULL AND p.longitude IS NOT NULL"
        return f"""
            WITH chunk AS (
                SELECT p.id,
                       CASE WHEN {own} THEN p.latitude::float8 ELSE town.latitude END AS lat,
                       CASE WHEN {own} THEN p.longitude::float8 ELSE town.longitude END
                         AS lng,
                       f.name, f.trades, f.city, f.description
                FROM {profiles} p
                CROSS JOIN LATERAL (
                    SELECT jobsite_unaccent(p.business_name) AS name,
                           jobsite_unaccent(coalesce({trades}, '')) AS trades,
                           jobsite_unaccent(p.city) AS city,
                           jobsite_unaccent(p.description) AS description) f
                LEFT JOIN LATERAL (
                    SELECT c.latitude, c.longitude FROM {cities} c
                    WHERE {_folded('c.name')} = lower(f.city) AND c.province = p.province
                    ORDER BY c.population DESC, c.id LIMIT 1) town ON NOT ({own})
                WHERE {where}
                ORDER BY p.id {'LIMIT %(limit)s' if limit else ''}
            ), entries AS (
                SELECT id, lat, lng, {document} AS document FROM chunk
            ), changed AS (
                UPDATE {profiles} p
                SET search_vector = e.document, search_latitude = e.lat,
                    search_longitude = e.lng, search_indexed_at = now()
                FROM entries e
                WHERE p.id = e.id AND (p.search_vector IS DISTINCT FROM e.document
                                       OR p.search_latitude IS DISTINCT FROM e.lat
                                       OR p.search_longitude IS DISTINCT FROM e.lng)
                RETURNING p.id
            )
            SELECT (SELECT count(*) FROM chunk), (SELECT count(*) FROM changed),
                   (SELECT max(id) FROM chunk)
        """

    def index_profiles(self, *, profile_ids: Sequence[int] | None = None, after_id: int = 0,
                       limit: int | None = None) -> IndexBatch:
        if profile_ids is not None:
            sql, params = self._index_sql("p.id = ANY(%(ids)s)", False), {
                "ids": list(profile_ids)}
        else:
            sql, params = self._index_sql("p.id > %(after)s", limit is not None), {
                "after": after_id, "limit": limit}
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            read, changed, last_id = cursor.fetchone()
        return IndexBatch(read=read, changed=changed, last_id=last_id)

    def search(self, query: SearchQuery) -> list[ContractorHit]:
        params: dict = {"limit": query.limit, "offset": query.offset}
        where = ["p.is_visible"]
        rank = "0::float4"
        if query.text:
            params["text"] = query.text
            languages = [query.language] if query.language else list(CONFIGS)
            tsquery = " || ".join(
                f"websearch_to_tsquery('{CONFIGS[language]}', jobsite_unaccent(%(text)s))"
                for language in languages)
            where.append(f"p.search_vector @@ ({tsquery})")
            rank = f"ts_rank(p.search_vector, {tsquery})"
        distance = "NULL::float8"
        if query.near is not None:
            near = query.near
            lat_span = near.radius_km / 111.0
            # A degree of longitude shrinks with the latitude; the box is widened by the
            # box's worst latitude (nearest the pole), so it never cuts the circle.
            worst = min(89.0, abs(near.latitude) + lat_span)
            lng_span = near.radius_km / (111.32 * math.cos(math.radians(worst)))
            params.update(lat=near.latitude, lng=near.longitude, radius=near.radius_km,
                          lat_min=near.latitude - lat_span, lat_max=near.latitude + lat_span,
                          lng_min=near.longitude - lng_span, lng_max=near.longitude + lng_span)
            distance = (
                f"(2 * {EARTH_RADIUS_KM} * asin(sqrt("
                "power(sin(radians(p.search_latitude - %(lat)s) / 2), 2) + "
                "cos(radians(%(lat)s)) * cos(radians(p.search_latitude)) * "
                "power(sin(radians(p.search_longitude - %(lng)s) / 2), 2))))")
            where.append("point(p.search_longitude, p.search_latitude) <@ "
                         "box(point(%(lng_min)s, %(lat_min)s), point(%(lng_max)s, %(lat_max)s))")
            where.append(f"{distance} <= %(radius)s")
        if query.category:
            params["category"] = json.dumps([query.category])
            where.append("p.trade_categories @> %(category)s::jsonb")
        params["pro"] = json.dumps([PRO_BADGE])
        sql = f"""
            SELECT p.id, p.user_id, p.business_name, p.city, p.province, p.trade_categories,
                   p.rating_average, p.rating_count, p.badges, {rank} AS rank,
                   {distance} AS distance_km
            FROM {_table(ContractorProfile)} p
            WHERE {' AND '.join(where)}
            ORDER BY p.badges @> %(pro)s::jsonb DESC, rank DESC, distance_km ASC,
                     p.rating_average DESC, p.id
            LIMIT %(limit)s OFFSET %(offset)s
        """
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return [ContractorHit(*row[:5], _json(row[5]), row[6], row[7], _json(row[8]),
                              rank=float(row[9]), distance_km=row[10]) for row in rows]
