"""The contractor profile admin shows the ratings, the badges with their rules and the
visibility with its reason; its action queues a recalculation; reviews are removed through
the service."""

from decimal import Decimal

import pytest
from django.urls import reverse

from audit.models import AuditLog
from marketplace import badges
from marketplace.models import ContractorProfile, Review
from marketplace.ratings import contractor_rating_recalculate
from tests.conftest import drain
from tests.marketplace.helpers import make_profile, prior, reviews_of


@pytest.mark.django_db
def test_the_profile_page_shows_figures_badges_rules_and_visibility(staff_client):
    # given a hidden, top-rated profile with a subscription badge
    prior(contractor="4.0000")
    profile = make_profile(badges=["pro"], city="")
    reviews_of(profile, [5] * 10)
    contractor_rating_recalculate(contractor_id=profile.user_id)

    page = staff_client.get(reverse("admin:marketplace_contractorprofile_change",
                                    args=[profile.pk])).content.decode()

    assert "4.5000" in page and "5.00" in page  # Bayesian and plain average
    assert "10 reviews, sum 50, average 5.00; Bayesian 4.5000 (C = 10" in page
    for badge in badges.BADGES:  # every badge with its rule, held or not
        assert badge.label in page
    assert "Bayesian rating ≥ 4.50 over ≥ 10 reviews" in page
    assert page.count("✔ held") == 2  # top rated and pro
    assert "Hidden from search: Incomplete: no city" in page
    listing = staff_client.get(reverse("admin:marketplace_contractorprofile_changelist"))
    assert "pro, top_rated" in listing.content.decode()


@pytest.mark.django_db(transaction=True)
def test_the_recalculate_action_queues_and_a_worker_runs_it(staff_client, broker, worker):
    prior(contractor="4.0000")
    profile = make_profile()
    reviews_of(profile, [3, 4])
    worker.pause()

    response = staff_client.post(
        reverse("admin:marketplace_contractorprofile_changelist"),
        {"action": "recalculate_ratings", "_selected_action": [profile.pk]}, follow=True)

    assert "Recalculation queued for 1 profile(s)." in response.content.decode()
    assert ContractorProfile.objects.get(pk=profile.pk).rating_count == 0  # not in the request
    worker.resume()
    drain(broker, worker)
    profile.refresh_from_db()
    assert (profile.rating_count, profile.rating_average) == (2, Decimal("3.50"))


@pytest.mark.django_db(transaction=True)
def test_staff_remove_reviews_through_the_service(staff_client, broker, worker):
    profile = make_profile()
    [review] = reviews_of(profile, [1])
    assert contractor_rating_recalculate(contractor_id=profile.user_id).rating_count == 1
    url = reverse("admin:marketplace_review_changelist")

    assert staff_client.get(reverse("admin:marketplace_review_delete",
                                    args=[review.pk])).status_code == 403
    response = staff_client.post(url, {"action": "remove_reviews",
                                       "_selected_action": [review.pk]}, follow=True)

    assert "1 review(s) removed." in response.content.decode()
    assert not Review.objects.exists()
    assert AuditLog.objects.filter(action="review.removed", resource_id=str(review.pk)).exists()
    drain(broker, worker)
    assert ContractorProfile.objects.get(pk=profile.pk).rating_count == 0
