"""Badges and visibility of contractor profiles: the rules, in one place.

Each rule is a line of a table: a name, what staff and contractors read (``rule``, shown in
admin), and the same rule as a SQL condition over the *figures* ``marketplace.ratings``
computes for a profile in one set-based statement (nightly for every profile, and for one
profile after its reviews change). Thresholds are the constants below; the text and the
SQL are both made from them, so they cannot say different things.

The figures a condition may use (columns of ``marketplace.ratings``' statement):

==========================  ===========================================================
``review_count``            reviews of the contractor (live: a removed review is gone)
``bayesian``                their Bayesian average, rounded to 4 places (``ratings``)
``completed_jobs``          the contractor's orders with status completed, all time
``accepted_recent``         orders the contractor accepted in the last
                            :data:`FAST_RESPONDER_WINDOW_DAYS` days
``response_median_s``       median seconds from creation to acceptance of those orders
                            (NULL when there are none)
``is_active``               the contractor's account is active
``has_trade``               the profile names at least one trade category
``city``, ``province``      the profile's city and province
==========================  ===========================================================

Every threshold is inclusive ("at least", "at most") except the low rating ("below").
"""

from dataclasses import dataclass
from decimal import Decimal

from marketplace.models import HiddenReason

# --- Badges -------------------------------------------------------------------------------

#: Top rated: a Bayesian average of at least this, over at least this many reviews.
TOP_RATED_MIN_BAYESIAN = Decimal("4.50")
TOP_RATED_MIN_REVIEWS = 10
#: Many completed jobs: at least this many completed orders.
MANY_JOBS_MIN_COMPLETED = 50
#: Fast responder: over the orders accepted in the last WINDOW days (at least MIN_ORDERS of
#: them), the median time from the order's creation to its acceptance is at most this.
FAST_RESPONDER_MAX_MEDIAN_HOURS = 2
FAST_RESPONDER_MIN_ORDERS = 5
FAST_RESPONDER_WINDOW_DAYS = 90


@dataclass(frozen=True)
class Badge:
    name: str  # stored in ContractorProfile.badges
    label: str
    rule: str
    # SQL over the figures; None: another app sets the badge and the recalculation keeps
    # it exactly as it finds it.
    sql: str | None


BADGES: tuple[Badge, ...] = (
    Badge("top_rated", "Top rated",
          f"Bayesian rating ≥ {TOP_RATED_MIN_BAYESIAN} over ≥ {TOP_RATED_MIN_REVIEWS} reviews",
          f"bayesian >= {TOP_RATED_MIN_BAYESIAN} AND review_count >= {TOP_RATED_MIN_REVIEWS}"),
    Badge("many_jobs", f"{MANY_JOBS_MIN_COMPLETED}+ jobs completed",
          f"≥ {MANY_JOBS_MIN_COMPLETED} completed orders",
          f"completed_jobs >= {MANY_JOBS_MIN_COMPLETED}"),
    Badge("fast_responder", "Fast responder",
          f"median time from order to acceptance ≤ {FAST_RESPONDER_MAX_MEDIAN_HOURS} h over "
          f"the ≥ {FAST_RESPONDER_MIN_ORDERS} orders accepted in the last "
          f"{FAST_RESPONDER_WINDOW_DAYS} days",
          f"accepted_recent >= {FAST_RESPONDER_MIN_ORDERS} AND "
          f"response_median_s <= {FAST_RESPONDER_MAX_MEDIAN_HOURS * 3600}"),
    # payments.models.subscriptions.PRO_BADGE (payments builds on marketplace: named here,
    # not imported; a test ties the two).
    Badge("pro", "Pro", "a contractor subscription with its features active (set by "
                        "payments when the subscription changes)", None),
)

#: The badges the recalculation decides; any other badge on a profile is left as it is.
COMPUTED_BADGES: tuple[str, ...] = tuple(badge.name for badge in BADGES if badge.sql)


def badge(name: str) -> Badge | None:
    return next((badge for badge in BADGES if badge.name == name), None)


# --- Visibility ---------------------------------------------------------------------------

#: Persistently low rated: a Bayesian average below this over at least this many reviews
#: (the Bayesian average leans on the platform's mean, so only many bad reviews get there).
LOW_RATED_BELOW_BAYESIAN = Decimal("3.00")
LOW_RATED_MIN_REVIEWS = 10


@dataclass(frozen=True)
class HidingRule:
    reason: HiddenReason
    rule: str
    sql: str


#: A profile is hidden from search while any rule matches; the first that matches is the
#: reason stored (``ContractorProfile.hidden_reason``). None matching: visible.
HIDING_RULES: tuple[HidingRule, ...] = (
    HidingRule(HiddenReason.ACCOUNT_INACTIVE, "the contractor's account is deactivated or "
                                              "deleted", "NOT is_active"),
    HidingRule(HiddenReason.NO_TRADE_CATEGORY, "no trade category", "NOT has_trade"),
    HidingRule(HiddenReason.NO_CITY, "no city", "btrim(city) = ''"),
    HidingRule(HiddenReason.NO_PROVINCE, "no province", "province = ''"),
    HidingRule(HiddenReason.LOW_RATED,
               f"Bayesian rating < {LOW_RATED_BELOW_BAYESIAN} over ≥ {LOW_RATED_MIN_REVIEWS} "
               "reviews",
               f"bayesian < {LOW_RATED_BELOW_BAYESIAN} AND review_count >= "
               f"{LOW_RATED_MIN_REVIEWS}"),
)
