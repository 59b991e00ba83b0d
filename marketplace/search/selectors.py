"""Reads of contractor search: :func:`search_contractors`, the places it can be near and
the categories it can filter on, most popular first."""

import re
from collections.abc import Sequence

from django.conf import settings
from django.db.models import F, Q, Value

from marketplace.models import City, Province, TradeCategory
from marketplace.search.backends import ContractorHit, Place, SearchQuery, search_backend
from marketplace.search.models import folded

#: Longer query text is cut here (a search box, not a document).
MAX_QUERY_CHARS = 200
MAX_LIMIT = 100
#: Deeper pages are refused: nobody reads them, and each costs more than the last.
MAX_OFFSET = 1000
LANGUAGES = ("en", "fr")

_SPACES = re.compile(r"\s+")
_CITY_AND_PROVINCE = re.compile(r"^(?P<name>.+?)\s*,\s*(?P<province>[A-Za-z]{2})$")
_CITY_WORDS = re.compile(r"^(ville de |city of )|( city| \(ville\))$", re.IGNORECASE)


class SearchInputError(ValueError):
    """The search cannot be answered as asked: an unknown place or category, a language
    other than en/fr, a limit or offset out of range. The message says which, for the
    user."""


def query_text_clean(text: str | None) -> str:
    """``text`` as it is searched: NUL and lone surrogates (which PostgreSQL cannot take)
    removed, white space collapsed, at most :data:`MAX_QUERY_CHARS` characters. Anything
    else is left to ``websearch_to_tsquery``, which never fails on its input."""
    if not text:
        return ""
    text = "".join(ch for ch in str(text) if ch != "\x00" and not "\ud800" <= ch <= "\udfff")
    return _SPACES.sub(" ", text).strip()[:MAX_QUERY_CHARS].strip()


def city_resolve(near: str | Sequence[str] | City) -> City:
    """The City ``near`` names: ``"Laval"``, ``"laval, qc"``, ``("Québec", "QC")``, a
    City. Accents and case do not matter; a name without a province is the most populous
    place of that name; "Québec City" and "Ville de Québec" are "Québec".

    Raises:
      SearchInputError: no such city.
    """
    if isinstance(near, City):
        return near
    province = None
    if isinstance(near, str):
        name = near
        if match := _CITY_AND_PROVINCE.match(near.strip()):
            name, province = match["name"], match["province"].upper()
    elif isinstance(near, Sequence) and len(near) == 2 and all(isinstance(x, str)
                                                                 for x in near):
        name, province = near[0], near[1].strip().upper()
    else:
        raise SearchInputError("'near' must be a city name, or a city and a province.")
    name = query_text_clean(name)
    if province is not None and province not in Province.values:
        raise SearchInputError(f"{province!r} is not a Canadian province or territory code.")
    for candidate in dict.fromkeys((name, _CITY_WORDS.sub("", name).strip())):
        if not candidate:
            continue
        cities = City.objects.annotate(key=folded(F("name"))).filter(
            key=folded(Value(candidate)))
        if province:
            cities = cities.filter(province=province)
        city = cities.order_by("-population", "pk").first()
        if city is not None:
            return city
    raise SearchInputError(f"No Canadian city named {name!r} is known.")


def category_resolve(category: str) -> str:
    """The slug of the category ``category`` names: its slug, or its English or French
    name (accents and case do not matter).

    Raises:
      SearchInputError: no such category.
    """
    text = query_text_clean(category)
    found = (TradeCategory.objects.annotate(en=folded(F("name_en")), fr=folded(F("name_fr")))
             .filter(Q(slug=text) | Q(en=folded(Value(text))) | Q(fr=folded(Value(text))))
             .values_list("slug", flat=True).first())
    if found is None:
        raise SearchInputError(f"No trade category named {text!r} is known.")
    return found


def search_contractors(
    query: str | None, *, near: str | Sequence[str] | City | None = None,
    category: str | None = None, language: str | None = None, limit: int = 20,
    offset: int = 0, radius_km: float | None = None,
) -> list[ContractorHit]:
    """Visible contractor profiles matching ``query``, best first.

    ``query`` is free text in English or French, as a user types it (``"quoted phrases"``,
    ``or``, ``-excluded`` words work as in web search engines); accents and case do not
    matter. It is searched in both languages, or only in ``language`` ("en"/"fr"). Text
    with no searchable word (only stop words or punctuation) finds nothing; no text at all
    lists the profiles the filters let through.

    ``near``: a city (see :func:`city_resolve`); only profiles within ``radius_km``
    (default ``SEARCH_NEAR_RADIUS_KM``) of it. ``category``: a trade category's slug or
    name; only profiles listing it.

    Order: Pro profiles first (their subscription's feature), then the text's rank (name
    over trades over city over description), then distance, then the ratings' order
    (``marketplace.ratings.RATING_ORDER``: Bayesian average, review count, oldest).

    Raises:
      SearchInputError: an unknown city or category, a language other than en/fr, a limit
        outside 1–100, an offset outside 0–1000, a radius that is not positive.
    """
    if language is not None and language not in LANGUAGES:
        raise SearchInputError("'language' must be 'en' or 'fr'.")
    if not 1 <= limit <= MAX_LIMIT:
        raise SearchInputError(f"'limit' must be between 1 and {MAX_LIMIT}.")
    if not 0 <= offset <= MAX_OFFSET:
        raise SearchInputError(f"'offset' must be between 0 and {MAX_OFFSET}.")
    place = None
    if near is not None:
        radius = settings.SEARCH_NEAR_RADIUS_KM if radius_km is None else radius_km
        if not 0 < radius <= 1000:
            raise SearchInputError("'radius_km' must be more than 0 and at most 1000.")
        city = city_resolve(near)
        place = Place(latitude=city.latitude, longitude=city.longitude, radius_km=radius)
    slug = category_resolve(category) if category is not None else None
    return search_backend().search(SearchQuery(
        text=query_text_clean(query), near=place, category=slug, language=language,
        limit=limit, offset=offset))


def search_category_suggestions(prefix: str = "", *, limit: int = 10) -> list[TradeCategory]:
    """Categories whose slug or English or French name starts with ``prefix`` (accents and
    case do not matter), the most popular first (orders of the last 90 days, then visible
    contractors: the nightly counts)."""
    text = query_text_clean(prefix)
    categories = TradeCategory.objects.all()
    if text:
        key = folded(Value(text))
        categories = categories.annotate(en=folded(F("name_en")), fr=folded(F("name_fr"))) \
            .filter(Q(slug__startswith=text.lower()) | Q(en__startswith=key)
                    | Q(fr__startswith=key))
    return list(categories.order_by("-recent_order_count", "-contractor_count", "slug")
                [:max(1, min(limit, MAX_LIMIT))])
