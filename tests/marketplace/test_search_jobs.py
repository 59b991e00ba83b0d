"""The search index kept current by jobs, through the real broker and a real worker: a
burst of profile edits rebuilds once, the nightly walk goes chunk by chunk from the last
id, the admin action and the JSON endpoints."""

import time

import pytest
from django.test import override_settings
from django.urls import reverse

from jobs.debounce import debounce_key
from jobs.http import ENDPOINT_LIMITS
from jobs.ratelimit import rate_limit_reset
from marketplace.models import ContractorProfile, TradeCategory
from marketplace.search.selectors import search_contractors
from marketplace.services import contractor_profile_update
from marketplace.tasks import SCHEDULES, search_reindex
from tests.conftest import drain
from tests.marketplace.search_helpers import index_all, make_profile, names

pytestmark = pytest.mark.usefixtures("search_reference_data")


def stored(broker, queue: str) -> int:
    """Messages stored on ``queue`` (``analytics``, or its delay queue ``analytics.DQ``)
    and not yet acknowledged."""
    return broker.client.hlen(f"{broker.namespace}:{queue}.msgs")


@pytest.mark.django_db(transaction=True)
@override_settings(SEARCH_REINDEX_DELAY_MS=300)
def test_a_burst_of_profile_edits_rebuilds_the_entry_once_with_the_last_edit(
        broker, redis_client, request):
    # given an indexed profile (complete: the visibility rules hide one without a trade)
    profile = make_profile("Peintre Gagnon", city="Laval", province="QC",
                           categories=["painting"])
    index_all()

    # when it is edited five times, each edit committed on its own
    for n in range(5):
        contractor_profile_update(profile=profile, business_name=f"Couvreur{n} Gagnon")

    # then one rebuild is waiting (beside one recalculation of the profile's visibility),
    # and nothing has changed yet
    assert (stored(broker, "analytics.DQ"), stored(broker, "analytics")) == (2, 0)
    assert redis_client.exists(debounce_key("search_profile_reindex", (profile.pk,), {}))
    assert names(search_contractors("peintre")) == ["Couvreur4 Gagnon"]  # name read live
    assert names(search_contractors("couvreur4")) == []
    # and after the delay, the one run sees the last edit
    worker = request.getfixturevalue("worker")
    time.sleep(0.4)
    drain(broker, worker)
    assert names(search_contractors("couvreur4")) == ["Couvreur4 Gagnon"]
    assert names(search_contractors("couvreur0")) == []  # the first edit is gone
    assert not redis_client.exists(debounce_key("search_profile_reindex", (profile.pk,), {}))

    # a later edit gets a run of its own
    contractor_profile_update(profile=profile, city="Québec")
    time.sleep(0.4)
    drain(broker, worker)
    assert names(search_contractors("couvreur4", near="Québec")) == ["Couvreur4 Gagnon"]


@pytest.mark.django_db(transaction=True)
@override_settings(SEARCH_REINDEX_CHUNK=2)
def test_the_nightly_walk_goes_chunk_by_chunk_from_the_last_id_then_counts(broker, worker):
    # given five profiles, none indexed
    profiles = [make_profile(f"Plombier {n}", categories=["plumbing"]) for n in range(5)]

    # when the walk is sent from the second profile's id (where a run stopped)
    search_reindex.send(profiles[1].pk)
    drain(broker, worker)

    # then the three after it are indexed, in two chunks of two and one, and not the
    # first two; the last step counted the categories
    indexed = dict(ContractorProfile.objects.values_list("pk", "search_indexed_at"))
    assert [indexed[p.pk] is not None for p in profiles] == [False, False, True, True, True]
    plumbing = TradeCategory.objects.get(slug="plumbing")
    assert (plumbing.contractor_count, plumbing.counted_at is not None) == (5, True)

    # a full run (the schedule's, from 0) indexes every one, and is idempotent
    search_reindex.send()
    search_reindex.send()
    drain(broker, worker)
    assert len(search_contractors("plombier")) == 5


@pytest.mark.django_db
def test_the_nightly_schedule_is_declared():
    [spec] = [spec for spec in SCHEDULES if spec.actor_name == "search_reindex"]
    assert (spec.name, spec.actor_name, spec.cron, spec.time_zone, spec.kwargs) == (
        "search-reindex", "search_reindex", "30 2 * * *", "America/Toronto", {})


@pytest.mark.django_db(transaction=True)
def test_the_admin_action_enqueues_a_rebuild_and_a_worker_does_it(staff_client, broker,
                                                                  request):
    profile = make_profile("Peintre Gagnon")
    url = reverse("admin:marketplace_contractorprofile_changelist")

    response = staff_client.post(url, {"action": "search_reindex",
                                       "_selected_action": [profile.pk]})

    assert response.status_code == 302
    profile.refresh_from_db()
    assert profile.search_indexed_at is None  # not in the request
    assert stored(broker, "analytics") == 1
    worker = request.getfixturevalue("worker")
    drain(broker, worker)
    assert names(search_contractors("peintre")) == ["Peintre Gagnon"]


@pytest.mark.django_db(transaction=True)
@override_settings(SEARCH_REINDEX_DELAY_MS=0)
def test_saving_a_profile_in_admin_rebuilds_its_entry(staff_client, broker, worker):
    profile = make_profile("Peintre Gagnon", city="Laval", province="QC")
    index_all()
    url = reverse("admin:marketplace_contractorprofile_change", args=[profile.pk])
    form = {"user": profile.user_id, "business_name": "Peintre Gagnon", "city": "Laval",
            "province": "QC", "trade_categories": "[]", "rating_average": "0",
            "rating_count": "0", "badges": "[]", "is_visible": "on",
            "created_at_0": "2026-01-01", "created_at_1": "00:00:00",
            "description": "Teinture de patios"}

    response = staff_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:2000]
    drain(broker, worker)
    assert names(search_contractors("patio")) == ["Peintre Gagnon"]


@pytest.mark.django_db
def test_the_search_endpoint_answers_json_and_400_for_what_it_cannot_search(client,
                                                                            redis_client):
    make_profile("Peintre Laval", city="Laval", province="QC", categories=["painting"])
    index_all()

    response = client.get("/search/contractors", {"q": "peintre", "near": "montreal"})
    assert response.status_code == 200
    [hit] = response.json()["results"]
    assert (hit["business_name"], hit["city"], hit["trade_categories"]) == (
        "Peintre Laval", "Laval", ["painting"])
    assert hit["distance_km"] == pytest.approx(10.3, abs=0.5)
    assert client.get("/search/contractors", {"q": '"(!'}).json() == {"results": []}
    for params in ({"near": "Atlantis"}, {"category": "x"}, {"limit": "-1"},
                   {"limit": "1e9"}, {"offset": "5000"}, {"lang": "de"}):
        response = client.get("/search/contractors", {"q": "peintre", **params})
        assert response.status_code == 400, params
        assert "error" in response.json()
    assert client.post("/search/contractors").status_code == 405
    suggestions = client.get("/search/categories", {"q": "pein", "lang": "fr"}).json()
    assert suggestions["results"][0]["slug"] == "painting"
    assert suggestions["results"][0]["name"] == "Peinture"


@pytest.mark.django_db
def test_the_search_endpoints_are_limited_per_client_address(client, redis_client):
    limit = ENDPOINT_LIMITS["search"]
    rate_limit_reset(limit, "ip:127.0.0.1")
    for _ in range(limit.limit):
        assert client.get("/search/contractors", {"q": "x"}).status_code == 200
    response = client.get("/search/categories")
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
