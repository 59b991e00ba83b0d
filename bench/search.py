"""The search part of ``manage.py benchmarketplace``: the search fields of the marketplace
data :func:`bench.marketplace.load` writes, the nightly phases, and search latency.

1. :func:`enrich` gives the loaded profiles what search reads, in one set-based UPDATE:
   EN and FR business names and descriptions, a city of the City table (weighted by
   population; a profile without a city keeps none), and for 70 % no coordinates of their
   own (the index places them at their city).
2. Each :data:`PHASES` entry is one nightly job in the order the night runs them (the
   README's schedule table), run the way production runs it: its actor sent as the
   schedule sends it to a real ``runworkergroup batch`` worker, timed from the send until
   the phase says it is done. The issue's figure is their sum. A phase is a name, what to
   send, and how to tell it is done.
3. :func:`run_queries` times ``search_contractors`` (in this process, through the
   configured backend) on a fixed mix of queries: one and two words, accents or not,
   English and French, with and without "near" and a category.
"""

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psutil
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from bench import marketplace as bench_marketplace
from bench.retention import CpuMeter
from bench.runner import BenchConfig, percentile, process_cpu_s, start_workers
from marketplace.models import City, ContractorProfile, RatingRun, TradeCategory
from marketplace.search.selectors import search_contractors
from marketplace.tasks import ratings_recalculate, search_reindex

POLL_S = 0.2

FIRST_NAMES = ["Liam", "Noah", "Olivia", "Emma", "William", "Charlotte", "Félix", "Léa",
               "Gabriel", "Zoé", "Mathis", "Chloé", "Raj", "Priya", "Wei", "Mei", "Amir",
               "Fatima", "Jacob", "Alice", "Étienne", "Rosalie", "Hugo", "Maëlle"]
LAST_NAMES = ["Tremblay", "Gagnon", "Roy", "Côté", "Bouchard", "Gauthier", "Morin",
              "Lavoie", "Fortin", "Gagné", "Ouellet", "Pelletier", "Bélanger", "Lévesque",
              "Smith", "Brown", "Wilson", "MacDonald", "Taylor", "Campbell", "Anderson",
              "Singh", "Chen", "Nguyen", "Patel", "Martin", "Leblanc", "Thériault", "Girard",
              "O'Brien"]
# slug → (English trade word, French trade word), as they appear in names and text.
TRADE_WORDS = {
    "plumbing": ("Plumbing", "Plomberie"), "electrical": ("Electric", "Électricien"),
    "renovation": ("Renovations", "Rénovation"), "roofing": ("Roofing", "Toitures"),
    "painting": ("Painting", "Peinture"), "carpentry": ("Carpentry", "Menuiserie"),
    "hvac": ("Heating & Cooling", "Chauffage"), "landscaping": ("Landscaping", "Paysagiste"),
    "flooring": ("Flooring", "Planchers"), "masonry": ("Masonry", "Maçonnerie"),
    "cleaning": ("Cleaning", "Entretien ménager"), "moving": ("Movers", "Déménagement"),
    "snow-removal": ("Snow Removal", "Déneigement"), "windows-doors": ("Windows & Doors",
                                                                       "Portes et fenêtres"),
    "drywall": ("Drywall", "Gypse"), "excavation": ("Excavation", "Excavation"),
    "handyman": ("Handyman", "Homme à tout faire"), "kitchens": ("Kitchens", "Cuisines"),
    "bathrooms": ("Bathrooms", "Salles de bain"), "pest-control": ("Pest Control",
                                                                   "Extermination"),
}
SUFFIXES_EN = ["Inc.", "Ltd.", "Services", "Pro", "& Sons", "Experts", "Co."]
SUFFIXES_FR = ["inc.", "et fils", "Services", "Pro", "enr.", "Experts", "ltée"]
SENTENCES_EN = [
    "Family business serving {city} and the surrounding area since {year}.",
    "Licensed and insured, free estimates, work guaranteed for {n} years.",
    "Residential and commercial {trade} with fast response times.",
    "We specialise in renovations, repairs and new installations.",
    "Emergency service available evenings and weekends.",
    "Certified technicians, clean job sites and honest prices.",
    "Over {n} hundred satisfied customers in {city}.",
    "Small jobs welcome: no project too small.",
    "Senior and student discounts on request.",
    "We finish on time and on budget, every time.",
    "Serving homeowners, landlords and property managers.",
    "Ask about our maintenance plans for {trade}.",
    "Bilingual team, English and French.",
    "Proud member of the local chamber of commerce.",
    "All work meets the building code and passes inspection.",
    "Call us for a quote today.",
    "Eco-friendly materials and careful clean-up.",
    "Fully bonded; WSIB coverage for every worker.",
]
SENTENCES_FR = [
    "Entreprise familiale au service de {city} et des environs depuis {year}.",
    "Licence RBQ, assurances complètes, soumission gratuite, travaux garantis {n} ans.",
    "{trade} résidentielle et commerciale, service rapide et courtois.",
    "Spécialistes en rénovation, réparations et nouvelles installations.",
    "Service d'urgence disponible le soir et la fin de semaine.",
    "Techniciens certifiés, chantiers propres et prix honnêtes.",
    "Plus de {n} cents clients satisfaits à {city}.",
    "Petits travaux bienvenus : aucun projet n'est trop petit.",
    "Rabais pour les aînés et les étudiants.",
    "Travaux terminés dans les délais et le budget prévus.",
    "Au service des propriétaires, des locataires et des gestionnaires d'immeubles.",
    "Demandez nos plans d'entretien en {trade}.",
    "Équipe bilingue, français et anglais.",
    "Membre fier de la chambre de commerce locale.",
    "Travaux conformes au code du bâtiment, inspection garantie.",
    "Appelez-nous pour une estimation dès aujourd'hui.",
    "Matériaux écologiques et nettoyage soigné.",
    "Cautionnés et assurés; protection CNESST pour chaque employé.",
]
REVIEW_TEXTS = ["Great work, on time and clean.", "Travail impeccable, je recommande.",
                "Fair price, would hire again.", "Un peu en retard mais très bon travail.",
                "", "", "Excellent service!", "Très professionnel."]


def _q(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _array(values: list[str]) -> str:
    # Literal arrays of the word lists (no user input): '{"a","b"}'.
    escaped = [v.replace("\\", "\\\\").replace('"', '\\"').replace("'", "''") for v in values]
    return "('{" + ",".join(f'"{v}"' for v in escaped) + "}'::text[])"


def enrich(progress: Callable[[str], None] = lambda _: None, seed: float = 0.42) -> int:
    """Give the benchmark's profiles their search fields (the module docstring); returns
    how many. Deterministic for a seed."""
    cities = list(City.objects.values_list("pk", "population"))
    if not cities:
        raise RuntimeError("The City table is empty: run the migrations first.")
    # Cities weighted by the square root of their population (the big ones dominate
    # without leaving the small ones empty).
    weighted = [pk for pk, population in cities
                for _ in range(max(1, round((population or 1) ** 0.5 / 40)))]
    sentences_en, sentences_fr = _array(SENTENCES_EN), _array(SENTENCES_FR)
    progress("giving the profiles names, descriptions and cities for search")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT setseed(%s)", [seed])
        cursor.execute(f"""
            UPDATE {_q(ContractorProfile)} p
            SET business_name = CASE WHEN f.french
                    THEN t.fr || ' ' || s.last_name || ' ' || s.suffix_fr
                    ELSE s.last_name || ' ' || t.en || ' ' || s.suffix_en END,
                city = CASE WHEN p.city = '' THEN '' ELSE c.name END,
                province = c.province,
                latitude = CASE WHEN s.own
                           THEN round((c.latitude + s.jitter_lat)::numeric, 6) END,
                longitude = CASE WHEN s.own
                            THEN round((c.longitude + s.jitter_lng)::numeric, 6) END,
                description = replace(replace(replace(replace(
                     CASE WHEN f.french THEN {sentences_fr}[s.a] || ' ' || {sentences_fr}[s.b]
                                           || ' ' || {sentences_fr}[s.c]
                          ELSE {sentences_en}[s.a] || ' ' || {sentences_en}[s.b] || ' '
                               || {sentences_en}[s.c] END,
                     '{{city}}', c.name), '{{year}}', (1970 + s.i %% 50)::text),
                     '{{n}}', (1 + s.i %% 10)::text),
                     '{{trade}}', CASE WHEN f.french THEN t.fr ELSE lower(t.en) END)
            FROM (
                SELECT q.id, q.i, q.trade, random() < 0.3 AS own,
                       -- three different sentences of the eighteen
                       1 + (q.i %% 18) AS a, 1 + ((q.i + 1 + (q.i / 18) %% 8) %% 18) AS b,
                       1 + ((q.i + 9 + (q.i / 144) %% 8) %% 18) AS c,
                       (random() - 0.5) * 0.2 AS jitter_lat,
                       (random() - 0.5) * 0.3 AS jitter_lng,
                       (%(cities)s::bigint[])[1 + floor(random() * %(n_cities)s)::int]
                         AS city_id,
                       (%(last)s::text[])[1 + floor(random() * %(n_last)s)::int] AS last_name,
                       (%(suffix_en)s::text[])[1 + q.i %% 7] AS suffix_en,
                       (%(suffix_fr)s::text[])[1 + q.i %% 7] AS suffix_fr
                FROM (SELECT p2.id, row_number() OVER (ORDER BY p2.id) AS i,
                             coalesce(p2.trade_categories ->> 0, 'handyman') AS trade
                      FROM {_q(ContractorProfile)} p2
                      WHERE p2.user_id IN ({bench_marketplace._bench_users('p')})) q
                ORDER BY q.id
            ) AS s
            JOIN {_q(City)} c ON c.id = s.city_id
            CROSS JOIN LATERAL (SELECT c.province = 'QC' OR (c.province IN ('NB', 'ON')
                                       AND s.i %% 5 = 0) AS french) f
            CROSS JOIN LATERAL (
                SELECT e.pair ->> 0 AS en, e.pair ->> 1 AS fr
                FROM jsonb_each(%(words)s::jsonb) e(slug, pair) WHERE e.slug = s.trade) t
            WHERE p.id = s.id
        """, {"cities": weighted, "n_cities": len(weighted), "last": LAST_NAMES,
              "n_last": len(LAST_NAMES), "suffix_en": SUFFIXES_EN, "suffix_fr": SUFFIXES_FR,
              "words": json.dumps({k: list(v) for k, v in TRADE_WORDS.items()})})
        enriched = cursor.rowcount
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM (ANALYZE) {_q(ContractorProfile)}")
    return enriched


def search_reset() -> None:
    """No search entry current: the next walk builds every one."""
    table = _q(ContractorProfile)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET search_vector = NULL, search_latitude = NULL, "
                       "search_longitude = NULL, search_source = NULL, "
                       "search_indexed_at = NULL")
        cursor.execute(f"VACUUM (ANALYZE) {table}")


# --- Nightly phases ----------------------------------------------------------------------


@dataclass
class Phase:
    """One nightly job: ``send`` enqueues it as its schedule would; ``done(since)`` says
    whether a run sent at ``since`` has finished (read from the rows it writes)."""

    name: str
    send: Callable[[], None]
    done: Callable[[datetime], bool]
    # What the run did, read after it finished (counts for the report).
    summary: Callable[[], dict[str, Any]] = field(default=lambda: {})


def _search_reindex_done(since: datetime) -> bool:
    # The walk's last step enqueues the popularity count: that is the end of the run.
    return TradeCategory.objects.filter(counted_at__gte=since).exists()


def _search_summary() -> dict[str, Any]:
    indexed = ContractorProfile.objects.filter(search_vector__isnull=False).count()
    placed = ContractorProfile.objects.filter(search_latitude__isnull=False).count()
    return {"profiles_indexed": indexed, "profiles_placed": placed}


def _ratings_done(since: datetime) -> bool:
    return RatingRun.objects.filter(started_at__gte=since,
                                    status=RatingRun.Status.DONE).exists()


def _ratings_summary() -> dict[str, Any]:
    return {"profiles_hidden": ContractorProfile.objects.filter(is_visible=False).count()}


#: The nightly jobs, in the order the night runs them (the README's schedule table:
#: ratings-recalculate 01:30, search-reindex 02:30).
PHASES: list[Phase] = [
    Phase("ratings-recalculate", send=lambda: ratings_recalculate.send(),
          done=_ratings_done, summary=_ratings_summary),
    Phase("search-reindex", send=lambda: search_reindex.send(),
          done=_search_reindex_done, summary=_search_summary),
]


@dataclass
class PhaseResult:
    name: str
    wall_s: float
    cpu: dict[str, float]
    summary: dict[str, Any]


def run_phases(phases: list[Phase], *, threads: int, timeout_s: float,
               progress: Callable[[str], None] = lambda _: None) -> list[PhaseResult]:
    """Run each phase on one real ``runworkergroup batch`` worker, one after the other."""
    workers = start_workers("batch", BenchConfig(workloads=[], counts={}, processes=1,
                                                  threads=threads, timeout_s=timeout_s))
    results = []
    try:
        for phase in phases:
            progress(f"{phase.name}: sent; waiting for it to finish")
            cpu = CpuMeter(workers)
            since = timezone.now()
            began = time.monotonic()
            phase.send()
            deadline = began + timeout_s
            while not phase.done(since):
                if workers.process.poll() is not None:
                    raise RuntimeError(f"the batch worker exited:\n{workers.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{phase.name} did not finish within {timeout_s:.0f} s"
                                       f":\n{workers.log_tail()}")
                cpu.sample()
                time.sleep(POLL_S)
            wall = time.monotonic() - began
            results.append(PhaseResult(phase.name, wall, cpu.result(wall), phase.summary()))
            progress(f"{phase.name}: {wall:.1f} s")
    finally:
        workers.stop()
        close_old_connections()
    return results


# --- Search queries ------------------------------------------------------------------------


def query_mix(count: int, seed: int = 7) -> list[tuple[str, dict[str, Any]]]:
    """``count`` (kind, search_contractors arguments) of the mix the module docstring
    describes, the same for a seed."""
    rng = random.Random(seed)
    # The trades the data set has (bench.marketplace.TRADES), in both languages.
    trades = list(bench_marketplace.TRADES)
    words = [w for trade in trades for w in TRADE_WORDS[trade]]
    folded_words = ["electricien", "renovation", "maconnerie", "menuisier", "plancher",
                    "plombier", "toiture", "peintre", "couvreur", "electrician", "plumber",
                    "roofer", "painter", "paysagiste", "thermopompe"]
    cities = ["Montréal", "Toronto", "Laval", "Québec", "Calgary", "Ottawa", "Gatineau",
              "Vancouver", "Sherbrooke", "Halifax", "Winnipeg", "Trois-Rivières", "Lévis"]
    mix = []
    for n in range(count):
        kind = ("one word", "one word unaccented", "two words", "name", "near", "category",
                "near and category", "phrase", "french only")[n % 9]
        word = rng.choice(words).split()[0]
        args: dict[str, Any] = {}
        if kind == "one word":
            query = word
        elif kind == "one word unaccented":
            query = rng.choice(folded_words)
        elif kind == "two words":
            query = f"{rng.choice(folded_words)} {rng.choice(cities)}"
        elif kind == "name":
            query = f"{rng.choice(LAST_NAMES)} {word}"
        elif kind == "near":
            query, args = word, {"near": rng.choice(cities)}
        elif kind == "category":
            query, args = rng.choice(["urgence", "emergency", "licensed", "gratuite",
                                      "commercial"]), {"category": rng.choice(trades)}
        elif kind == "near and category":
            query, args = "", {"near": rng.choice(cities),
                               "category": rng.choice(trades)}
        elif kind == "phrase":
            query = rng.choice(['"free estimates"', '"emergency service"', '"small jobs"',
                                '"soumission gratuite"', '"petits travaux"',
                                '"équipe bilingue"'])
        else:
            query, args = rng.choice(folded_words), {"language": "fr"}
        mix.append((kind, {"query": query, **args}))
    return mix


@dataclass
class QueryTimes:
    ms: list[float]
    by_kind: dict[str, list[float]]
    results: int  # hits returned in all, to show the queries found something
    empty: int  # queries that found nothing
    # CPU milliseconds per query, on average: the PostgreSQL backend that answered, and
    # this process (Django, the driver). Steadier than wall time on a shared machine.
    cpu_ms: dict[str, float] = field(default_factory=dict)


def run_queries(count: int, *, warmup: int = 50) -> QueryTimes:
    mix = query_mix(count)
    for _, args in query_mix(warmup, seed=99):
        search_contractors(args.pop("query"), **args)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = psutil.Process(cursor.fetchone()[0])
    own = psutil.Process()
    cpu_before = (process_cpu_s(backend), process_cpu_s(own))
    times, by_kind, results, empty = [], {}, 0, 0
    for kind, args in mix:
        args = dict(args)
        query = args.pop("query")
        began = time.perf_counter()
        hits = search_contractors(query, **args)
        ms = (time.perf_counter() - began) * 1000
        times.append(ms)
        by_kind.setdefault(kind, []).append(ms)
        results += len(hits)
        empty += not hits
    postgres, django = (process_cpu_s(backend) - cpu_before[0],
                        process_cpu_s(own) - cpu_before[1])
    return QueryTimes(ms=times, by_kind=by_kind, results=results, empty=empty,
                      cpu_ms={"postgres": round(postgres / len(mix) * 1000, 2),
                              "django": round(django / len(mix) * 1000, 2)})


def latency(ms: list[float]) -> dict[str, float | None]:
    return {f"p{p}_ms": None if not ms else round(percentile(ms, p), 2) for p in (50, 95, 99)} | {
        "max_ms": round(max(ms), 2) if ms else None}
