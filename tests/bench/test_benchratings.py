"""``manage.py benchratings`` end to end (its own process on ``config.settings_bench``, here
on the test database and Redis, a real batch worker, a tiny marketplace): the loader's
exact rows, the full run through the actor, its verification, the rows gone afterwards.

No speed is asserted: speed is what the command measures, not what a test may judge.
"""

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from bench import marketplace
from bench.runner import database_url
from marketplace.models import ContractorProfile, Order, RatingRun, Review, User


def benchratings(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_bench",
           "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
           "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE}
    return subprocess.run([sys.executable, "manage.py", "benchratings", *args],
                          cwd=settings.BASE_DIR, env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.django_db(transaction=True)
def test_benchratings_loads_recalculates_verifies_and_cleans_up(broker):
    done = benchratings("--profiles", "100", "--reviews", "1000", "--bare-count", "0",
                        "--json")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["loaded"] == {"profiles": 100, "clients": 200, "orders": 1000,
                                "contractor_reviews": 1000, "client_reviews": 200}
    first, second = report["runs"]
    assert (first["status"], first["problems"]) == ("done", [])
    assert first["counts"]["profiles"] == first["counts"]["profiles_changed"] == 100
    assert first["counts"]["hidden"] > 0  # the incomplete, inactive and low-rated ones
    assert second["counts"]["profiles_changed"] == second["counts"]["clients_changed"] == 0
    assert second["problems"] == []
    assert set(first["cpu"]) == {"worker_s", "postgres_bench_backends_s",
                                 "postgres_server_s", "cores_busy"}
    assert RatingRun.objects.filter(status="done").count() == 2
    assert not User.objects.filter(email__startswith=marketplace.USER_PREFIX).exists()
    assert (ContractorProfile.objects.count(), Order.objects.count(),
            Review.objects.count()) == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
def test_benchratings_refuses_beside_a_marketplace_that_is_not_its_own():
    someone = User.objects.create_user("someone@example.test", "pw-someone-123")
    Order.objects.create(client=someone, title="A real order", province="ON")

    done = benchratings("--profiles", "10", "--reviews", "10", "--bare-count", "0")

    assert done.returncode == 1
    assert "1 profiles or orders are not the benchmark's" in done.stderr
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_verification_catches_a_wrong_count_and_a_lost_subscription_badge():
    from marketplace import ratings

    loaded = marketplace.load(40, 300)
    run = ratings.rating_run_start()
    while ratings.rating_run_step(run.pk):
        pass
    assert marketplace.ratings_verify(loaded) == []

    profile = ContractorProfile.objects.filter(badges__contains=["pro"]).first()
    ContractorProfile.objects.filter(pk=profile.pk).update(badges=[], rating_count=999)

    assert marketplace.ratings_verify(loaded) == [
        "1 profiles' count or average is not their reviews'",
        "1 profiles have the pro badge, not 2"]
    marketplace.delete_bench_data()
