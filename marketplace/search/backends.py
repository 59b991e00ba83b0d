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
from django.db import connection, transaction
from django.utils.module_loading import import_string

from marketplace.models import City, ContractorProfile, TradeCategory

#: The badge of a Pro subscription (``payments.models.subscriptions.PRO_BADGE``; payments
#: builds on marketplace, so it is named again here, and a test holds the two equal): its
#: profiles come first among the matches.
PRO_BADGE = "pro"
#: A Pro profile, as the partial indexes of ``ContractorProfile`` say it (the same text,
#: so the planner can use them).
PRO_SQL = f"""p.badges @> '{json.dumps([PRO_BADGE])}'::jsonb"""

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
#: The planner's price of a random page read while searching (PostgreSQL's default: 4).
RANDOM_PAGE_COST = 1.1


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
    rating_bayesian: Decimal  # the ratings' ranking figure (marketplace.ratings)
    rating_count: int
    badges: list
    rank: float  # 0 for a search without text
    distance_km: float | None  # with ``near`` only


@dataclass(frozen=True)
class IndexBatch:
    """What one ``index_profiles`` call did: the profiles it read (``last_id`` the highest
    id among them, ``None`` if none) and how many entries it rebuilt."""

    read: int
    changed: int
    last_id: int | None


class SearchBackend(Protocol):
    def index_profiles(self, *, profile_ids: Sequence[int] | None = None, after_id: int = 0,
                       limit: int | None = None, force: bool = False) -> IndexBatch:
        """Rebuild the entries of ``profile_ids``, or of the ``limit`` profiles with the
        lowest ids above ``after_id``: those whose sources changed since they were built,
        or all of them with ``force``. Idempotent: derived from the rows alone."""

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


def _analysed(folded_text: str) -> str:
    # Folded once, analysed in both languages: "électricien" and "electricien" give the
    # same lexemes, stemmed the English and the French way.
    return (f"(to_tsvector('{CONFIGS['en']}', {folded_text}) || "
            f"to_tsvector('{CONFIGS['fr']}', {folded_text}))")


class PostgresSearchBackend:
    """PostgreSQL full-text search on ``ContractorProfile.search_vector`` (GIN), "near"
    by a bounding box on the entry's indexed latitude and longitude, then the haversine
    distance."""

    #: Changed when the entries' recipe changes: every entry is rebuilt the next night.
    RECIPE = "2026-12-07"

    def _index_sql(self, where: str, limit: bool) -> str:
        """One statement: read the profiles, rebuild the entries whose sources changed
        (``search_source``: a digest of the profile's own fields, the categories' words,
        the cities and :attr:`RECIPE`), write them; return (read, written, last id).

        Parsing and stemming are the cost, so what many profiles share is analysed once
        per statement: each trade category listed, each (city, province)."""
        profiles, cities, categories = (_table(ContractorProfile), _table(City),
                                        _table(TradeCategory))
        listed = ("jsonb_array_elements_text(CASE jsonb_typeof({0}.trade_categories) "
                  "WHEN 'array' THEN {0}.trade_categories ELSE '[]' END)")
        own = "r.latitude IS NOT NULL AND r.longitude IS NOT NULL"
        return f"""
            WITH digest AS (
                SELECT md5(%(recipe)s
                    || (SELECT coalesce(string_agg(concat_ws('|', slug, name_en, name_fr,
                                                            search_terms), '|' ORDER BY slug),
                                        '') FROM {categories})
                    || (SELECT coalesce(string_agg(concat_ws('|', name, province, latitude,
                                                            longitude), '|' ORDER BY id), '')
                        FROM {cities})) AS value
            ), read AS (
                SELECT p.id, p.business_name, p.trade_categories, p.city, p.province,
                       p.description, p.latitude, p.longitude, p.search_source,
                       md5(d.value || concat_ws('|', p.business_name, p.trade_categories,
                                                 p.city, p.province, p.description,
                                                 p.latitude, p.longitude))::uuid AS source
                FROM {profiles} p, digest d
                WHERE {where}
                ORDER BY p.id {'LIMIT %(limit)s' if limit else ''}
            ), todo AS (
                SELECT * FROM read WHERE %(force)s OR search_source IS DISTINCT FROM source
            ), trades AS MATERIALIZED (
                -- Each category listed: its slug, names and search terms; an unknown
                -- slug: its words.
                SELECT s.slug, setweight({_analysed("s.words")}, 'B') AS vector
                FROM (SELECT DISTINCT l.slug, jobsite_unaccent(coalesce(
                          concat_ws(' ', translate(c.slug, '-_', '  '), c.name_en, c.name_fr,
                                    c.search_terms),
                          translate(l.slug, '-_', '  '))) AS words
                      FROM todo r CROSS JOIN LATERAL {listed.format("r")} AS l(slug)
                      LEFT JOIN {categories} c ON c.slug = l.slug) s
            ), towns AS MATERIALIZED (
                SELECT t.city, t.province, setweight({_analysed("t.folded")}, 'C') AS vector,
                       c.latitude, c.longitude
                FROM (SELECT DISTINCT city, province, jobsite_unaccent(city) AS folded
                      FROM todo) t
                LEFT JOIN LATERAL (
                    SELECT c.latitude, c.longitude FROM {cities} c
                    WHERE {_folded("c.name")} = lower(t.folded) AND c.province = t.province
                    ORDER BY c.population DESC, c.id LIMIT 1) c ON true
            ), entries AS (
                SELECT r.id, r.source,
                       CASE WHEN {own} THEN r.latitude::float8 ELSE w.latitude END AS lat,
                       CASE WHEN {own} THEN r.longitude::float8 ELSE w.longitude END AS lng,
                       setweight({_analysed("jobsite_unaccent(r.business_name)")}, 'A')
                       || coalesce((SELECT jobsite_tsvector_agg(t.vector)
                                    FROM {listed.format("r")} AS l(slug)
                                    JOIN trades t ON t.slug = l.slug), '')
                       || w.vector
                       || setweight({_analysed("jobsite_unaccent(r.description)")}, 'D')
                         AS document
                FROM todo r JOIN towns w ON w.city = r.city AND w.province = r.province
            ), written AS (
                UPDATE {profiles} p
                SET search_vector = e.document, search_latitude = e.lat,
                    search_longitude = e.lng, search_source = e.source,
                    search_indexed_at = now()
                FROM entries e
                WHERE p.id = e.id
                RETURNING p.id
            )
            SELECT (SELECT count(*) FROM read), (SELECT count(*) FROM written),
                   (SELECT max(id) FROM read)
        """

    def index_profiles(self, *, profile_ids: Sequence[int] | None = None, after_id: int = 0,
                       limit: int | None = None, force: bool = False) -> IndexBatch:
        params = {"recipe": self.RECIPE, "force": force}
        if profile_ids is not None:
            sql = self._index_sql("p.id = ANY(%(ids)s)", False)
            params["ids"] = list(profile_ids)
        else:
            sql = self._index_sql("p.id > %(after)s", limit is not None)
            params.update(after=after_id, limit=limit)
        with transaction.atomic(), connection.cursor() as cursor:
            # The planner prices the statement high enough for JIT compilation, which
            # costs more than the whole statement (about 1 s per chunk, measured).
            cursor.execute("SET LOCAL jit = off")
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
            where.append("p.search_latitude BETWEEN %(lat_min)s AND %(lat_max)s AND "
                         "p.search_longitude BETWEEN %(lng_min)s AND %(lng_max)s")
            where.append(f"{distance} <= %(radius)s")
        if query.category:
            params["category"] = json.dumps([query.category])
            where.append("p.trade_categories @> %(category)s::jsonb")

        def select(pro: bool, limit: int, offset: int) -> str:
            return f"""
                SELECT p.id, p.user_id, p.business_name, p.city, p.province,
                       p.trade_categories, p.rating_bayesian, p.rating_count, p.badges,
                       {rank} AS rank, {distance} AS distance_km
                FROM {_table(ContractorProfile)} p
                WHERE {' AND '.join(where)} AND {'' if pro else 'NOT '}{PRO_SQL}
                ORDER BY rank DESC, distance_km ASC, p.rating_bayesian DESC,
                         p.rating_count DESC, p.id
                LIMIT {int(limit)} OFFSET {int(offset)}
            """

        # Pro profiles come first, so the page is read from them first: a common word
        # matches many of them, and the page is then answered from the Pro profiles'
        # own (partial) indexes without ranking the thousands of others that match.
        # Only what the Pro profiles leave of the page is read from the rest.
        wanted = query.offset + query.limit
        with transaction.atomic(), connection.cursor() as cursor:
            # The entries are read from memory, where a random page costs about what a
            # sequential one does: priced so, a common word is answered from the GIN
            # index (measured 40–60 ms for 18,000 matches of 100,000) rather than by a
            # scan of the whole table (175 ms).
            cursor.execute(f"SET LOCAL random_page_cost = {RANDOM_PAGE_COST}")
            cursor.execute("SET LOCAL jit = off")
            cursor.execute(select(True, wanted, 0), params)
            pros = cursor.fetchall()
            rows = pros[query.offset:]
            if len(pros) < wanted:
                cursor.execute(select(False, query.limit - len(rows),
                                      max(0, query.offset - len(pros))), params)
                rows += cursor.fetchall()
        return [ContractorHit(*row[:5], _json(row[5]), row[6], row[7], _json(row[8]),
                              rank=float(row[9]), distance_km=row[10]) for row in rows]
