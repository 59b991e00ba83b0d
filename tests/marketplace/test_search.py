"""Contractor search on real PostgreSQL: accents, both languages' stemming, weights,
visibility, "near this city", categories and their popularity, hostile query text."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from marketplace.models import City, ContractorProfile, Order, TradeCategory, User
from marketplace.search.backends import PRO_BADGE
from marketplace.search.index import (
    search_categories_count,
    search_profile_index,
    search_reindex_step,
)
from marketplace.search.selectors import (
    SearchInputError,
    city_resolve,
    search_category_suggestions,
    search_contractors,
)
from tests.marketplace.search_helpers import index_all, make_profile, names

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("search_reference_data")]


def lexemes(profile: ContractorProfile) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT u.lexeme FROM marketplace_contractorprofile p, "
                       "unnest(p.search_vector) u WHERE p.id = %s", [profile.pk])
        return {row[0] for row in cursor.fetchall()}


def test_an_accented_query_finds_unaccented_text_and_the_reverse():
    make_profile("Electricien Gagnon")
    make_profile("Électricien Roy")
    make_profile("Peintre Gagnon")
    index_all()

    for query in ("électricien", "electricien", "ÉLECTRICIEN", "Electricien"):
        assert sorted(names(search_contractors(query))) == [
            "Electricien Gagnon", "Électricien Roy"], query


def test_french_and_english_words_are_stemmed_as_each_language_does():
    make_profile("Plombier Tremblay")
    make_profile("Plomberie Roy")
    make_profile("Smith Roofing")
    index_all()

    # French: plombiers → plombi (as plombier), but plomberie → plomber: not the same stem.
    assert names(search_contractors("plombiers")) == ["Plombier Tremblay"]
    assert names(search_contractors("plomberies")) == ["Plomberie Roy"]
    # English: roofs and roofing → roof.
    assert names(search_contractors("roofs")) == ["Smith Roofing"]
    assert names(search_contractors("plumbing roofs")) == []  # both words must match


def test_a_trade_categorys_labels_find_its_contractors_in_both_languages():
    make_profile("Gagnon et fils", categories=["electrical"])
    make_profile("Roy inc.", categories=["plumbing"])
    index_all()

    for query in ("électricien", "electricity", "Électricité", "câblage"):
        assert names(search_contractors(query)) == ["Gagnon et fils"], query
    assert names(search_contractors("plombiers")) == ["Roy inc."]  # search terms: plombier


def test_a_match_in_the_name_outranks_trades_then_city_then_description():
    description = make_profile("Entreprise D", description="Réparation de toiture")
    city = make_profile("Entreprise C", city="Toiture", description="")
    trade = make_profile("Entreprise B", categories=["roofing"])  # Roofing / Toiture
    name = make_profile("Toiture Pelletier")
    index_all()

    hits = search_contractors("toiture")

    assert [hit.profile_id for hit in hits] == [name.pk, trade.pk, city.pk, description.pk]
    assert hits[0].rank > hits[1].rank > hits[2].rank > hits[3].rank > 0


def test_pro_profiles_come_first_among_the_matches():
    assert PRO_BADGE == __import__("payments.models.subscriptions", fromlist=["x"]).PRO_BADGE
    make_profile("Toiture Pelletier")
    make_profile("Couvreur Roy", description="toiture", badges=[PRO_BADGE])
    index_all()

    assert names(search_contractors("toiture")) == ["Couvreur Roy", "Toiture Pelletier"]


def test_pages_run_on_from_the_pro_profiles_to_the_others_without_a_gap_or_a_repeat():
    for n in range(5):
        make_profile(f"Peintre Pro{n}", badges=[PRO_BADGE], description="peinture")
    for n in range(7):
        make_profile(f"Peintre {n}", description="peinture" if n % 2 else "")
    make_profile("Peintre caché", badges=[PRO_BADGE], visible=False)
    index_all()
    everything = names(search_contractors("peintre", limit=100))
    assert len(everything) == 12
    assert [name.startswith("Peintre Pro") for name in everything] == [True] * 5 + [False] * 7

    for limit in (1, 3, 5, 7):
        pages = [names(search_contractors("peintre", limit=limit, offset=offset))
                 for offset in range(0, 14, limit)]
        assert [name for page in pages for name in page] == everything, limit
        assert all(len(page) == limit for page in pages[:12 // limit])


def test_hidden_profiles_are_never_found_and_come_back_when_visible_again():
    shown = make_profile("Peintre Gagnon")
    hidden = make_profile("Peintre Roy", visible=False)
    index_all()

    assert names(search_contractors("peintre")) == ["Peintre Gagnon"]
    assert names(search_contractors("", category=None)) == ["Peintre Gagnon"]

    # Visibility is read live: no reindex needed either way.
    ContractorProfile.objects.filter(pk=hidden.pk).update(is_visible=True)
    ContractorProfile.objects.filter(pk=shown.pk).update(is_visible=False)
    assert names(search_contractors("peintre")) == ["Peintre Roy"]


def test_near_a_city_finds_profiles_within_the_radius_nearest_first_among_equals():
    laval = make_profile("Peintre Laval", city="Laval", province="QC")  # from its city
    montreal = make_profile("Peintre Montréal", city="Montréal", province="QC",
                            latitude="45.501900", longitude="-73.567400")  # its own
    quebec = make_profile("Peintre Québec", city="Québec", province="QC")
    index_all()

    hits = search_contractors("peintre", near="Montréal")

    assert [hit.profile_id for hit in hits] == [montreal.pk, laval.pk]
    assert hits[0].distance_km == pytest.approx(1.7, abs=0.3)
    assert hits[1].distance_km == pytest.approx(10.3, abs=0.5)  # Laval ↔ Montréal
    # Accents, case, a province, or a tuple: the same place
    for near in ("montreal", "MONTRÉAL, qc", ("Montreal", "QC")):
        assert names(search_contractors("peintre", near=near)) == names(hits), near
    # Québec City is 230 km away: found near Québec, or with a radius that reaches it
    assert names(search_contractors("peintre", near="Québec City")) == ["Peintre Québec"]
    assert quebec.pk in [hit.profile_id for hit in search_contractors(
        "peintre", near="Montréal", radius_km=300)]
    assert names(search_contractors("peintre", near="Laval", radius_km=5)) == [
        "Peintre Laval"]


def test_a_profile_without_coordinates_is_placed_at_its_city():
    profile = make_profile("Roy inc.", city="trois-rivieres", province="QC")
    elsewhere = make_profile("Nowhere inc.", city="Atlantis", province="QC")
    index_all()

    profile.refresh_from_db()
    city = City.objects.get(name="Trois-Rivières")
    assert (profile.search_latitude, profile.search_longitude) == (city.latitude,
                                                                   city.longitude)
    assert (profile.latitude, profile.longitude) == (None, None)  # the contractor's own
    elsewhere.refresh_from_db()
    assert elsewhere.search_latitude is None
    assert names(search_contractors("", near="Trois-Rivières")) == ["Roy inc."]


def test_an_unknown_place_or_category_is_a_clear_error():
    with pytest.raises(SearchInputError, match="No Canadian city named 'Atlantis'"):
        search_contractors("peintre", near="Atlantis")
    with pytest.raises(SearchInputError, match="province"):
        search_contractors("peintre", near="Laval, XX")
    with pytest.raises(SearchInputError, match="trade category"):
        search_contractors("peintre", category="astrology")
    with pytest.raises(SearchInputError, match="language"):
        search_contractors("peintre", language="de")
    with pytest.raises(SearchInputError, match="limit"):
        search_contractors("peintre", limit=0)
    assert city_resolve("Laval").province == "QC"
    assert city_resolve("London").province == "ON"


def test_the_category_filter_takes_a_slug_or_a_name_in_either_language():
    make_profile("Gagnon et fils", categories=["plumbing", "hvac"], description="Service 24h")
    make_profile("Roy inc.", categories=["electrical"], description="Service 24h")
    index_all()

    for category in ("plumbing", "Plomberie", "plomberie", "PLUMBING"):
        assert names(search_contractors("service", category=category)) == [
            "Gagnon et fils"], category
    assert names(search_contractors("", category="Chauffage et climatisation")) == [
        "Gagnon et fils"]


@pytest.mark.parametrize("query", [
    "'", '"', '"unterminated', "a & b | !", "!!!", "((", ")", ":*", "<->", "<2>", "& |",
    "-", "--", "or", "OR OR", "\\", "%", "_", "'; DROP TABLE marketplace_city; --",
    "électricien\x00", "\ud800plombier", "x" * 10_000, "le la les", "🔧 plombier", "\t\n",
])
def test_any_query_text_gets_results_or_none_never_an_error(query):
    make_profile("Plombier Tremblay")
    index_all()

    hits = search_contractors(query)

    assert isinstance(hits, list)
    assert City.objects.count() > 200


def test_popularity_counts_visible_contractors_and_recent_orders():
    now = timezone.now()
    a = make_profile("A", categories=["plumbing", "hvac"])
    make_profile("B", categories=["plumbing"])
    make_profile("C", categories=["plumbing"], visible=False)
    client = User.objects.create_user("client@example.test", None)
    for days in (1, 89, 91):  # the last is older than the 90 days
        order = Order.objects.create(client=client, contractor=a.user, title="Job",
                                     province="ON")
        Order.objects.filter(pk=order.pk).update(created_at=now - timedelta(days=days))

    search_categories_count(now=now)

    counts = {c.slug: (c.contractor_count, c.recent_order_count)
              for c in TradeCategory.objects.all()}
    assert counts["plumbing"] == (2, 2)
    assert counts["hvac"] == (1, 2)
    assert counts["roofing"] == (0, 0)
    assert TradeCategory.objects.filter(counted_at=now).count() == TradeCategory.objects.count()
    # Suggestions: the most popular first, by prefix in either language
    assert [c.slug for c in search_category_suggestions("")[:2]] == ["plumbing", "hvac"]
    assert [c.slug for c in search_category_suggestions("chauf")] == ["hvac"]
    assert [c.slug for c in search_category_suggestions("ELEC")] == ["electrical"]


def test_an_entry_is_rebuilt_only_when_its_text_or_place_changed():
    profile = make_profile("Peintre Gagnon")
    assert search_profile_index(profile_id=profile.pk) is True
    assert search_profile_index(profile_id=profile.pk) is False
    ContractorProfile.objects.filter(pk=profile.pk).update(description="Teinture de patios")
    assert search_profile_index(profile_id=profile.pk) is True
    assert {"teintur", "patios", "patio"} <= lexemes(profile)
    assert search_profile_index(profile_id=10**9) is False  # gone: nothing to do


def test_the_walk_rebuilds_only_changed_entries_and_all_of_a_renamed_category():
    make_profile("Gagnon et fils", categories=["plumbing"])
    make_profile("Roy inc.", categories=["roofing"])
    assert search_reindex_step(after_id=0, size=10).changed == 2
    assert search_reindex_step(after_id=0, size=10).changed == 0  # nothing changed

    # a category's words changed: every profile is rebuilt (its digest covers them all)
    TradeCategory.objects.filter(slug="plumbing").update(search_terms="tuyauteur")
    assert search_reindex_step(after_id=0, size=10).changed == 2
    assert names(search_contractors("tuyauteur")) == ["Gagnon et fils"]
    # force rebuilds whatever changed or not
    assert search_reindex_step(after_id=0, size=10, force=True).changed == 2


def test_a_search_backend_that_cannot_be_used_is_a_system_check_error(settings):
    from marketplace.checks import search_backend_check

    assert search_backend_check() == []
    settings.SEARCH_BACKEND = "marketplace.search.backends.Nowhere"
    [error] = search_backend_check()
    assert (error.id, "cannot be imported" in error.msg) == ("marketplace.E001", True)
    settings.SEARCH_BACKEND = "marketplace.search.backends.SearchQuery"
    [error] = search_backend_check()
    assert (error.id, "has no index_profiles, search" in error.msg) == ("marketplace.E001",
                                                                         True)
