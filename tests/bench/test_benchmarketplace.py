"""``manage.py benchmarketplace`` end to end (its own process on ``config.settings_bench``,
here on the test database and Redis, a real batch worker, a tiny data set).

No speed is asserted: speed is what the command measures, not what a test may judge.
"""

import json
import subprocess

import pytest

from bench import marketplace
from marketplace.models import ContractorProfile, Order, Review, TradeCategory, User
from tests.bench.commands import bench_command


def benchmarketplace(*args: str) -> subprocess.CompletedProcess:
    return bench_command("benchmarketplace", *args)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("search_reference_data")
def test_benchmarketplace_indexes_every_profile_on_a_real_worker_and_times_searches(broker):
    done = benchmarketplace("--profiles", "300", "--reviews", "1500", "--queries", "45",
                            "--json", "--bare-count", "200")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["load"] == {"profiles": 300, "orders": 1500, "reviews": 1800,
                              "seconds": report["load"]["seconds"]}
    assert report["ratings_verification"] == []
    for night in ("nightly_full_build", "nightly_next_night"):
        ratings, search = report[night]["phases"]
        assert ratings["name"] == "ratings-recalculate" and ratings["profiles_hidden"] > 0
        # every profile indexed; placed unless it has no city (1 % of them) and none of
        # its own coordinates
        assert (search["name"], search["profiles_indexed"]) == ("search-reindex", 300)
        assert 290 <= search["profiles_placed"] <= 300
        assert report[night]["wall_s"] == pytest.approx(ratings["wall_s"] + search["wall_s"],
                                                        abs=0.2)
    for key in ("search", "search_without_pro"):
        search = report[key]
        assert search["queries"] == 45 and search["results"] > 0
        assert set(search["by_kind"]) == {"one word", "one word unaccented", "two words",
                                          "name", "near", "category", "near and category",
                                          "phrase", "french only"}
        assert search["max_ms"] >= search["p95_ms"] >= search["p50_ms"] > 0
        assert set(search["cpu_ms_per_query"]) == {"postgres", "django"}
    assert report["search"]["label"] == "15 Pro profiles of 300"  # one in twenty
    assert report["bare_dramatiq"]["jobs"] == 200
    # The nightly run counted the popularity; the benchmark's rows are gone.
    assert TradeCategory.objects.filter(counted_at__isnull=False).count() == 20
    assert not User.objects.filter(email__startswith=marketplace.USER_PREFIX).exists()
    assert (ContractorProfile.objects.count(), Order.objects.count(),
            Review.objects.count()) == (0, 0, 0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("search_reference_data")
def test_benchmarketplace_refuses_beside_profiles_that_are_not_its_own():
    user = User.objects.create_user("pro@example.test", None)
    ContractorProfile.objects.create(user=user, business_name="Real", city="Laval",
                                     province="QC")

    done = benchmarketplace("--profiles", "10", "--reviews", "10", "--bare-count", "0")

    assert done.returncode != 0
    assert "not the benchmark's" in done.stderr
    assert ContractorProfile.objects.count() == 1
