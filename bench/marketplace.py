"""The marketplace benchmark's data and its ratings measurement.

:func:`load` fills the configured database (a bench database: it refuses to load beside
another benchmark's marketplace rows) with ``profiles`` contractors and their profiles,
twice as many clients, ``reviews`` completed orders each reviewed by its client, and a
review of the client by the contractor on every ``client_review_every``-th order, all in
set-based ``INSERT … SELECT generate_series`` chunks, then VACUUM ANALYZE (as autovacuum
would have left the tables). Everything is derived from the row's position through
``hashint8extended``, so two loads of the same size hold the same data:

- orders per contractor are skewed (the busiest have thousands, most a handful; the last
  10 % of profiles have none), spread over the last 365 days;
- ratings average about 4.3; every contractor whose user id is 7 mod 50 is rated low
  (about 2), so some profiles are hidden as persistently low rated;
- contractors whose user id is 0 mod 4 accept within 2.5 hours (the rest within 30), so
  some earn the fast-responder badge;
- 1 % of profiles have no trade category, 1 % no city, 1 % an inactive account; every
  20th has the subscription's ``pro`` badge (which the recalculation must keep), spread
  over every trade (the first trade is shifted by ``n / 20``: search reads Pro profiles
  first, and Pro plumbers only would leave every other trade without any);
- business names, trades, cities and provinces are real-looking (the search index reads
  them).

:func:`ratings_run` then runs the nightly full recalculation the way production does (the
``ratings_recalculate`` actor on a real ``runworkergroup batch`` worker, one chunk per
message) and reports its duration (the run's own started → finished) and CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections, connection, transaction

from marketplace.models import (
    ClientRating,
    ContractorProfile,
    Order,
    RatingRun,
    Review,
    ReviewSubject,
    User,
)

USER_PREFIX = "bench-mkt-"
USER_DOMAIN = "@bench.jobsite.invalid"
ORDER_TITLE = "Bench order"
LOAD_CHUNK = 200_000  # orders (and their reviews) per INSERT … SELECT, each its own transaction
POLL_S = 0.2

TRADES = ("plumbing", "electrical", "roofing", "painting", "renovation", "landscaping",
          "hvac", "carpentry", "flooring", "masonry")
CITIES = (("Toronto", "ON", "43.6532", "-79.3832"), ("Montréal", "QC", "45.5019", "-73.5674"),
          ("Vancouver", "BC", "49.2827", "-123.1207"), ("Calgary", "AB", "51.0447", "-114.0719"),
          ("Ottawa", "ON", "45.4215", "-75.6972"), ("Québec", "QC", "46.8139", "-71.2080"),
          ("Winnipeg", "MB", "49.8951", "-97.1384"), ("Halifax", "NS", "44.6488", "-63.5752"),
          ("Edmonton", "AB", "53.5461", "-113.4938"), ("Victoria", "BC", "48.4284", "-123.3656"))
NAMES = ("Maple", "Northern", "True North", "Laurentian", "Prairie", "Coastal", "Summit",
         "Lakeshore", "Boréal", "Harbour", "Cedar", "Granite")

USER = User._meta.db_table
PROFILE = ContractorProfile._meta.db_table
ORDER = Order._meta.db_table
REVIEW = Review._meta.db_table
CLIENT_RATING = ClientRating._meta.db_table


def _frac(column: str, seed: int) -> str:
    """SQL: a deterministic number in [0, 1) from ``column`` (53 bits of a seeded hash)."""
    return (f"((hashint8extended({column}, {seed}) & 9007199254740991)::float8 "
            "/ 9007199254740992)")


def _rating(column: str, low: str) -> str:
    """SQL: a 1–5 rating from ``column``: mean about 4.3, or about 2 where ``low``."""
    u = _frac(column, 11)
    return (f"CASE WHEN {low} THEN CASE WHEN {u} < 0.4 THEN 1 WHEN {u} < 0.7 THEN 2 "
            f"WHEN {u} < 0.9 THEN 3 ELSE 4 END "
            f"ELSE CASE WHEN {u} < 0.03 THEN 1 WHEN {u} < 0.06 THEN 2 WHEN {u} < 0.15 THEN 3 "
            f"WHEN {u} < 0.45 THEN 4 ELSE 5 END END")


def _bench_users(kind: str) -> str:
    """SQL: the ids of the benchmark's users of ``kind`` ('p' contractors, 'c' clients)."""
    return f"SELECT id FROM {USER} WHERE starts_with(email, '{USER_PREFIX}{kind}')"


@dataclass
class Loaded:
    profiles: int
    clients: int
    orders: int
    contractor_reviews: int
    client_reviews: int
    seconds: float = 0.0


def counts() -> Loaded:
    """What the database holds of the benchmark's rows now."""
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT (SELECT count(*) FROM {PROFILE} WHERE user_id IN ({_bench_users('p')})),
                   (SELECT count(*) FROM ({_bench_users('c')}) c),
                   (SELECT count(*) FROM {ORDER} WHERE title = %s),
                   (SELECT count(*) FROM {REVIEW} r JOIN {ORDER} o ON o.id = r.order_id
                    WHERE o.title = %s AND r.subject_role = %s),
                   (SELECT count(*) FROM {REVIEW} r JOIN {ORDER} o ON o.id = r.order_id
                    WHERE o.title = %s AND r.subject_role = %s)""",
                       [ORDER_TITLE, ORDER_TITLE, ReviewSubject.CONTRACTOR, ORDER_TITLE,
                        ReviewSubject.CLIENT])
        return Loaded(*cursor.fetchone())


def delete_bench_data(progress: Callable[[str], None] = lambda _: None) -> None:
    """Delete every row an earlier load made (set-based: the ORM would load millions)."""
    with connection.cursor() as cursor:
        users = f"SELECT id FROM {USER} WHERE starts_with(email, '{USER_PREFIX}')"
        progress("deleting the benchmark's reviews and orders")
        cursor.execute(f"DELETE FROM {REVIEW} WHERE order_id IN "
                       f"(SELECT id FROM {ORDER} WHERE title = %s)", [ORDER_TITLE])
        cursor.execute(f"DELETE FROM {ORDER} WHERE title = %s", [ORDER_TITLE])
        progress("deleting the benchmark's profiles and users")
        cursor.execute(f"DELETE FROM {CLIENT_RATING} WHERE user_id IN ({users})")
        cursor.execute(f"DELETE FROM {PROFILE} WHERE user_id IN ({users})")
        cursor.execute(f"DELETE FROM {USER} WHERE id IN ({users})")


def _foreign_rows() -> int:
    """Marketplace profiles and orders that are not the benchmark's."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT (SELECT count(*) FROM {PROFILE} WHERE user_id NOT IN "
                       f"({_bench_users('p')})) + (SELECT count(*) FROM {ORDER} "
                       "WHERE title <> %s)", [ORDER_TITLE])
        return cursor.fetchone()[0]


def _insert_users(cursor, kind: str, count: int) -> list[int]:
    contractor = kind == "p"
    cursor.execute(f"""
        INSERT INTO {USER} (password, last_login, is_superuser, email, first_name, last_name,
                            preferred_language, time_zone, province, is_contractor, is_staff,
                            is_active, date_joined, last_activity_at, email_verified_at)
        SELECT '!', NULL, false, '{USER_PREFIX}{kind}' || s.i || '{USER_DOMAIN}', 'Bench', '',
               CASE WHEN s.i %% 4 = 0 THEN 'fr' ELSE 'en' END, 'America/Toronto', 'ON',
               %(contractor)s, false, NOT (%(contractor)s AND s.i %% 100 = 37),
               now() - interval '400 days', now(), now()
        FROM generate_series(1, %(count)s) AS s(i) ORDER BY s.i""",
                   {"contractor": contractor, "count": count})
    cursor.execute(_bench_users(kind) + " ORDER BY id")
    return [row[0] for row in cursor.fetchall()]


def load(profiles: int = 100_000, reviews: int = 1_000_000, *, client_review_every: int = 5,
         progress: Callable[[str], None] = lambda _: None) -> Loaded:
    """Load the benchmark's marketplace (the module docstring) after deleting any earlier
    load. Raises RuntimeError beside rows that are not the benchmark's."""
    started = time.monotonic()
    delete_bench_data(progress)
    foreign = _foreign_rows()
    if foreign:
        raise RuntimeError(f"{foreign} profiles or orders are not the benchmark's: load it "
                           "into a database of its own (BENCH_DATABASE_URL).")
    clients = 2 * profiles
    with transaction.atomic(), connection.cursor() as cursor:
        progress(f"loading {profiles:,} contractors and {clients:,} clients")
        contractor_ids = _insert_users(cursor, "p", profiles)
        client_ids = _insert_users(cursor, "c", clients)
        trades = "ARRAY[" + ", ".join(f"'{t}'" for t in TRADES) + "]"
        names = "ARRAY[" + ", ".join(f"'{n}'" for n in NAMES) + "]"
        city = "ARRAY[" + ", ".join(f"'{c[0]}'" for c in CITIES) + "]"
        province = "ARRAY[" + ", ".join(f"'{c[1]}'" for c in CITIES) + "]"
        lat = "ARRAY[" + ", ".join(c[2] for c in CITIES) + "]"
        lng = "ARRAY[" + ", ".join(c[3] for c in CITIES) + "]"
        cursor.execute(f"""
            INSERT INTO {PROFILE} (user_id, business_name, trade_categories, city, province,
                                   latitude, longitude, rating_average, rating_count,
                                   rating_bayesian, rating_updated_at, badges, is_visible,
                                   hidden_reason, created_at, description)
            SELECT u.id,
                   ({names})[1 + u.n %% {len(NAMES)}] || ' '
                       || initcap(({trades})[1 + (u.n + u.n / 20) %% {len(TRADES)}]) || ' ' || u.n,
                   CASE WHEN u.n %% 100 = 11 THEN '[]'::jsonb
                        WHEN u.n %% 3 = 0 THEN jsonb_build_array(
                            ({trades})[1 + (u.n + u.n / 20) %% {len(TRADES)}],
                            ({trades})[1 + (u.n / 7) %% {len(TRADES)}])
                        ELSE jsonb_build_array(
                            ({trades})[1 + (u.n + u.n / 20) %% {len(TRADES)}]) END,
                   CASE WHEN u.n %% 100 = 23 THEN ''
                        ELSE ({city})[1 + (u.n / 3) %% {len(CITIES)}] END,
                   ({province})[1 + (u.n / 3) %% {len(CITIES)}],
                   ({lat})[1 + (u.n / 3) %% {len(CITIES)}] + (u.n %% 1000) / 10000.0,
                   ({lng})[1 + (u.n / 3) %% {len(CITIES)}] - (u.n %% 997) / 10000.0,
                   0, 0, 0, NULL,
                   CASE WHEN u.n %% 20 = 0 THEN '["pro"]'::jsonb ELSE '[]'::jsonb END,
                   true, '', now() - interval '400 days', ''
            FROM (SELECT id, row_number() OVER (ORDER BY id) AS n
                  FROM unnest(%(ids)s::bigint[]) AS id) u""", {"ids": contractor_ids})

    active = int(profiles * 0.9)
    orders_sql = f"""
        INSERT INTO {ORDER} (client_id, contractor_id, title, status, subtotal_cents,
                             tax_cents, total_cents, currency, province, created_at,
                             updated_at, accepted_at, completed_at)
        SELECT x.client_id, x.contractor_id, '{ORDER_TITLE}', 'completed', x.sub,
               x.sub * 13 / 100, x.sub + x.sub * 13 / 100, 'CAD', 'ON', x.created,
               x.created + x.response + interval '2 days', x.created + x.response,
               x.created + x.response + interval '2 days'
        FROM (
            SELECT s.i, y.contractor_id,
                   (%(clients)s::bigint[])[1 + floor(%(n_clients)s * {_frac('s.i', 2)})::int]
                       AS client_id,
                   10000 + s.i %% 90000 AS sub,
                   now() - {_frac('s.i', 4)} * interval '365 days' AS created,
                   CASE WHEN y.contractor_id %% 4 = 0
                        THEN {_frac('s.i', 5)} * interval '150 minutes'
                        ELSE {_frac('s.i', 5)} * interval '30 hours' END AS response
            FROM generate_series(%(first)s, %(last)s) AS s(i)
            CROSS JOIN LATERAL (SELECT (%(contractors)s::bigint[])
                [1 + floor(%(active)s * power({_frac('s.i', 1)}, 2))::int] AS contractor_id) y
        ) x ORDER BY x.i"""
    for first in range(1, reviews + 1, LOAD_CHUNK):
        last = min(first + LOAD_CHUNK - 1, reviews)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(orders_sql, {"clients": client_ids, "n_clients": clients,
                                        "contractors": contractor_ids, "active": active,
                                        "first": first, "last": last})
        progress(f"loaded {last:,} of {reviews:,} orders")

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(id), max(id) FROM {ORDER} WHERE title = %s", [ORDER_TITLE])
        low, high = cursor.fetchone()
    reviews_sql = f"""
        INSERT INTO {REVIEW} (order_id, author_id, subject_id, subject_role, rating, text,
                              created_at, edited_at)
        SELECT o.id, o.client_id, o.contractor_id, '{ReviewSubject.CONTRACTOR}',
               {_rating('o.id', 'o.contractor_id %% 50 = 7')},
               CASE WHEN o.id %% 3 = 0 THEN 'Good work, on time.' ELSE '' END,
               o.completed_at, NULL::timestamptz
        FROM {ORDER} o WHERE o.id BETWEEN %(low)s AND %(high)s AND o.title = '{ORDER_TITLE}'
        UNION ALL
        SELECT o.id, o.contractor_id, o.client_id, '{ReviewSubject.CLIENT}',
               {_rating('o.id + 1', 'false')}, '', o.completed_at, NULL
        FROM {ORDER} o WHERE o.id BETWEEN %(low)s AND %(high)s AND o.title = '{ORDER_TITLE}'
                         AND o.id %% %(every)s = 0"""
    for chunk_low in range(low, high + 1, LOAD_CHUNK):
        chunk_high = min(chunk_low + LOAD_CHUNK - 1, high)
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(reviews_sql, {"low": chunk_low, "high": chunk_high,
                                         "every": client_review_every})
        progress(f"reviewed orders up to id {chunk_high:,} ({low:,}…{high:,})")

    with connection.cursor() as cursor:
        for table in (USER, PROFILE, ORDER, REVIEW, CLIENT_RATING):
            progress(f"VACUUM ANALYZE {table}")
            cursor.execute(f"VACUUM (ANALYZE) {table}")
    loaded = counts()
    loaded.seconds = time.monotonic() - started
    return loaded


def ratings_reset(progress: Callable[[str], None] = lambda _: None) -> None:
    """Put the benchmark's profiles back to never recalculated (figures zero, computed
    badges and client ratings gone, all visible), as :func:`load` leaves them, so the
    next run writes every row again."""
    from marketplace.badges import COMPUTED_BADGES

    progress("resetting the profiles' ratings")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"""
            UPDATE {PROFILE} SET rating_average = 0, rating_count = 0, rating_bayesian = 0,
                                 rating_updated_at = NULL, badges = badges - %s::text[],
                                 is_visible = true, hidden_reason = ''
            WHERE user_id IN ({_bench_users('p')})""", [list(COMPUTED_BADGES)])
        cursor.execute(f"DELETE FROM {CLIENT_RATING} WHERE user_id IN ({_bench_users('c')})")
    with connection.cursor() as cursor:
        for table in (PROFILE, CLIENT_RATING):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def ratings_verify(loaded: Loaded) -> list[str]:
    """What a finished full run got wrong, checked apart from its SQL: a profile whose
    count or average is not its reviews', a client rating likewise, a subscription badge
    lost (every 20th profile has one)."""
    problems = []
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT count(*) FROM {PROFILE} p
            LEFT JOIN (SELECT subject_id, count(*) AS n, avg(rating) AS a FROM {REVIEW}
                       WHERE subject_role = %s GROUP BY subject_id) r ON r.subject_id = p.user_id
            WHERE p.user_id IN ({_bench_users('p')})
              AND (p.rating_count <> coalesce(r.n, 0)
                   OR p.rating_average <> round(coalesce(r.a, 0), 2))""",
                       [ReviewSubject.CONTRACTOR])
        if wrong := cursor.fetchone()[0]:
            problems.append(f"{wrong} profiles' count or average is not their reviews'")
        cursor.execute(f"""
            SELECT count(*) FROM (SELECT subject_id, count(*) AS n, avg(rating) AS a
                                  FROM {REVIEW} WHERE subject_role = %s GROUP BY subject_id) r
            FULL JOIN {CLIENT_RATING} cr ON cr.user_id = r.subject_id
            WHERE cr.user_id IS NULL OR r.subject_id IS NULL OR cr.rating_count <> r.n
               OR cr.rating_average <> round(r.a, 2)""", [ReviewSubject.CLIENT])
        if wrong := cursor.fetchone()[0]:
            problems.append(f"{wrong} client ratings are not their reviews'")
        cursor.execute(f"SELECT count(*) FROM {PROFILE} WHERE badges ? 'pro' "
                       f"AND user_id IN ({_bench_users('p')})")
        if (pro := cursor.fetchone()[0]) != loaded.profiles // 20:
            problems.append(f"{pro} profiles have the pro badge, not {loaded.profiles // 20}")
    return problems


def ratings_run(*, timeout_s: float = 600.0, threads: int = 1,
                progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Run the full recalculation through the ``ratings_recalculate`` actor on a real
    ``runworkergroup batch`` worker and wait for its run to finish. Returns the run's
    duration (its started_at → finished_at), the wall time from the send, its counts and
    the CPU of the worker and of PostgreSQL."""
    from bench.retention import CpuMeter
    from bench.runner import BenchConfig, start_workers
    from marketplace.tasks import ratings_recalculate

    workers = start_workers("batch", BenchConfig(workloads=[], counts={}, processes=1,
                                                  threads=threads, timeout_s=timeout_s))
    try:
        before = RatingRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        cpu = CpuMeter(workers)
        sent = time.time()
        ratings_recalculate.send()
        progress("ratings_recalculate sent; waiting for the run to finish")
        deadline = time.monotonic() + timeout_s
        while True:
            if workers.process.poll() is not None:
                raise RuntimeError(f"the batch worker exited:\n{workers.log_tail()}")
            run = RatingRun.objects.filter(pk__gt=before).order_by("pk").first()
            if run is not None and run.status != RatingRun.Status.RUNNING:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the run did not finish within {timeout_s:.0f} s")
            cpu.sample()
            time.sleep(POLL_S)
        wall = run.finished_at.timestamp() - sent
        return {"run_id": run.pk, "status": run.status,
                "run_s": round((run.finished_at - run.started_at).total_seconds(), 2),
                "wall_s": round(wall, 2), "counts": run.counts,
                "priors": {"contractor": str(run.contractor_prior_mean),
                           "client": str(run.client_prior_mean),
                           "confidence": str(run.confidence)},
                "cpu": cpu.result(wall)}
    finally:
        workers.stop()
        close_old_connections()
