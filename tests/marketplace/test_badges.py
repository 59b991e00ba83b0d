"""Badges and visibility (marketplace.badges), each rule just below and at its threshold,
computed by the recalculation's SQL on real PostgreSQL. The platform mean ``m`` is set by a
stored run (``helpers.prior``), C is 10, so each Bayesian figure below is exact."""

from datetime import timedelta
from decimal import Decimal

import pytest

from marketplace import badges
from marketplace.models import HiddenReason, OrderStatus
from marketplace.ratings import contractor_rating_recalculate
from tests.marketplace.helpers import make_profile, orders, prior, reviews_of

HOUR = timedelta(hours=1)


def recalculated(profile):
    return contractor_rating_recalculate(contractor_id=profile.user_id)


@pytest.mark.django_db
@pytest.mark.parametrize(("ratings", "bayesian", "top_rated"), [
    ([5] * 9 + [4], Decimal("4.4500"), False),  # (40 + 49) / 20: just below 4.50
    ([5] * 10, Decimal("4.5000"), True),  # (40 + 50) / 20: at 4.50
])
def test_top_rated_at_its_bayesian_threshold(ratings, bayesian, top_rated):
    prior(contractor="4.0000")
    profile = make_profile()
    reviews_of(profile, ratings)
    profile = recalculated(profile)
    assert profile.rating_bayesian == bayesian
    assert ("top_rated" in profile.badges) is top_rated


@pytest.mark.django_db
@pytest.mark.parametrize(("count", "top_rated"), [(9, False), (10, True)])
def test_top_rated_needs_its_number_of_reviews(count, top_rated):
    # m = 4.5: nine 5★ reviews already give a Bayesian average above 4.50
    prior(contractor="4.5000")
    profile = make_profile()
    reviews_of(profile, [5] * count)
    profile = recalculated(profile)
    assert profile.rating_bayesian > badges.TOP_RATED_MIN_BAYESIAN
    assert ("top_rated" in profile.badges) is top_rated


@pytest.mark.django_db
@pytest.mark.parametrize(("completed", "many_jobs"), [(49, False), (50, True)])
def test_many_jobs_counts_completed_orders_only(completed, many_jobs):
    profile = make_profile()
    orders(profile.user, completed)
    orders(profile.user, 3, status=OrderStatus.CANCELLED)
    orders(profile.user, 3, status=OrderStatus.IN_PROGRESS)
    assert ("many_jobs" in recalculated(profile).badges) is many_jobs


@pytest.mark.django_db
@pytest.mark.parametrize(("slowest_middle", "fast"), [
    (2 * HOUR + timedelta(seconds=1), False),  # median just over 2 h
    (2 * HOUR, True),  # median exactly 2 h
])
def test_fast_responder_at_its_median(slowest_middle, fast):
    # five orders accepted in the window: 1 h, 1 h, <middle>, 3 h, 3 h
    profile = make_profile()
    for after in (HOUR, HOUR, slowest_middle, 3 * HOUR, 3 * HOUR):
        orders(profile.user, 1, status=OrderStatus.ACCEPTED, accepted_after=after)
    assert ("fast_responder" in recalculated(profile).badges) is fast


@pytest.mark.django_db
def test_fast_responder_needs_enough_recent_orders():
    profile = make_profile()
    orders(profile.user, badges.FAST_RESPONDER_MIN_ORDERS - 1, accepted_after=HOUR / 2)
    # accepted quickly, but outside the 90-day window
    orders(profile.user, 5, accepted_after=HOUR / 2, created_ago=timedelta(days=92))
    assert "fast_responder" not in recalculated(profile).badges

    orders(profile.user, 1, accepted_after=HOUR / 2)
    assert "fast_responder" in recalculated(profile).badges


@pytest.mark.django_db
def test_badges_set_elsewhere_are_kept_and_computed_ones_follow_the_rules():
    # given a profile with the subscription's badge and one from another source
    prior(contractor="4.0000")
    profile = make_profile(badges=["verified", "pro"])
    reviews_of(profile, [5] * 10)

    # when it earns top rated, then loses it
    assert recalculated(profile).badges == ["verified", "pro", "top_rated"]
    review = profile.user.reviews_received.first()
    review.rating = 1
    review.save()

    # then only the computed badge goes
    assert recalculated(profile).badges == ["verified", "pro"]


def test_the_subscription_badge_is_in_the_table_and_left_to_payments():
    from payments.models.subscriptions import PRO_BADGE

    entry = badges.badge(PRO_BADGE)
    assert entry is not None and entry.sql is None
    assert PRO_BADGE not in badges.COMPUTED_BADGES


# --- Visibility ----------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize(("ratings", "bayesian", "hidden"), [
    ([2] * 10, Decimal("3.0000"), False),  # (40 + 20) / 20: at 3.00, not below
    ([2] * 9 + [1], Decimal("2.9500"), True),  # (40 + 19) / 20: just below
])
def test_low_rated_at_its_bayesian_threshold(ratings, bayesian, hidden):
    prior(contractor="4.0000")
    profile = make_profile()
    reviews_of(profile, ratings)
    profile = recalculated(profile)
    assert profile.rating_bayesian == bayesian
    assert profile.is_visible is not hidden
    assert profile.hidden_reason == (HiddenReason.LOW_RATED if hidden else "")


@pytest.mark.django_db
@pytest.mark.parametrize(("count", "hidden"), [(9, False), (10, True)])
def test_low_rated_needs_its_number_of_reviews(count, hidden):
    prior(contractor="4.0000")
    profile = make_profile()
    reviews_of(profile, [1] * count)
    profile = recalculated(profile)
    assert profile.rating_bayesian < badges.LOW_RATED_BELOW_BAYESIAN
    assert profile.is_visible is not hidden


@pytest.mark.django_db
@pytest.mark.parametrize(("fields", "reason"), [
    ({"trade_categories": []}, HiddenReason.NO_TRADE_CATEGORY),
    ({"city": "  "}, HiddenReason.NO_CITY),
    ({"province": ""}, HiddenReason.NO_PROVINCE),
    ({"is_active": False}, HiddenReason.ACCOUNT_INACTIVE),
    # the first rule that holds is the reason
    ({"is_active": False, "city": "", "trade_categories": []}, HiddenReason.ACCOUNT_INACTIVE),
    ({"city": "", "trade_categories": []}, HiddenReason.NO_TRADE_CATEGORY),
])
def test_incomplete_or_inactive_profiles_are_hidden_with_their_reason(fields, reason):
    profile = recalculated(make_profile(**fields))
    assert (profile.is_visible, profile.hidden_reason) == (False, reason)


@pytest.mark.django_db
def test_a_completed_profile_is_shown_again():
    profile = recalculated(make_profile(city=""))
    assert not profile.is_visible
    profile.city = "Ottawa"
    profile.save()
    profile = recalculated(profile)
    assert (profile.is_visible, profile.hidden_reason) == (True, "")
