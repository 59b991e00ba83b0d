"""Rating recalculation (marketplace.ratings): the Bayesian ordering, the debounced
recalculation of a burst of review changes, and the nightly full run in chunks, through a
real worker on real PostgreSQL and Redis."""

import time
from decimal import ROUND_HALF_UP, Decimal

import pytest
from django.db import transaction

from jobs.monitoring import stats
from marketplace import ratings
from marketplace.models import (
    ClientRating,
    ContractorProfile,
    Order,
    RatingRun,
    Review,
    ReviewSubject,
    User,
)
from marketplace.ratings import RATING_ORDER
from marketplace.reviews import review_create, review_remove, review_update
from marketplace.tasks import ratings_recalculate
from tests.conftest import drain
from tests.marketplace.helpers import make_profile, make_user, orders, prior, reviews_of


def q4(value: Decimal) -> Decimal:
    return value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def ranked() -> list[int]:
    return list(ContractorProfile.objects.order_by(*RATING_ORDER).values_list("pk", flat=True))


def counts_of(actor_name: str) -> stats.StatCounts:
    stats.recorder.flush()
    return stats.totals().get(("analytics", actor_name), stats.StatCounts())


@pytest.fixture
def clean_stats(redis_client):
    stats.recorder.flush()
    redis_client.flushdb()
    yield
    stats.recorder.flush()


# --- Bayesian ordering ------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_one_five_star_review_ranks_below_fifty_averaging_four_point_eight(broker, worker):
    # given one 5★ review, fifty averaging 4.8, and a long-standing 4.0 profile
    single = make_profile(business_name="Single")
    fifty = make_profile(business_name="Fifty")
    steady = make_profile(business_name="Steady")
    reviews_of(single, [5])
    reviews_of(fifty, [5] * 40 + [4] * 10)
    reviews_of(steady, [4] * 100)

    # when the nightly run recalculates everyone through a worker
    ratings_recalculate.send()
    drain(broker, worker)

    # then the platform mean is every review's mean, each figure is (C·m + s) / (C + n)
    run = RatingRun.objects.get()
    m = q4(Decimal(5 + 240 + 400) / 151)
    assert (run.status, run.contractor_prior_mean, run.contractor_reviews) == ("done", m, 151)
    expected = {single.pk: q4((10 * m + 5) / 11), fifty.pk: q4((10 * m + 240) / 60),
                steady.pk: q4((10 * m + 400) / 110)}
    stored = dict(ContractorProfile.objects.values_list("pk", "rating_bayesian"))
    assert stored == expected
    # and fifty 4.8s rank first, the single 5★ below them, plain averages kept beside
    assert ranked() == [fifty.pk, single.pk, steady.pk]
    assert [(p.rating_count, p.rating_average) for p in
            ContractorProfile.objects.order_by(*RATING_ORDER)] == [
        (50, Decimal("4.80")), (1, Decimal("5.00")), (100, Decimal("4.00"))]


@pytest.mark.django_db
def test_ties_rank_more_reviews_first_then_the_older_profile():
    # given m = 4.0: 10 reviews summing 50 and 30 summing 140 are both exactly 4.5000
    prior(contractor="4.0000")
    few = make_profile()
    many = make_profile()
    few_again = make_profile()
    reviews_of(few, [5] * 10)
    reviews_of(many, [5] * 20 + [4] * 10)
    reviews_of(few_again, [5] * 10)

    for profile in (few, many, few_again):
        ratings.contractor_rating_recalculate(contractor_id=profile.user_id)

    assert set(ContractorProfile.objects.values_list("rating_bayesian", flat=True)) == {
        Decimal("4.5000")}
    assert ranked() == [many.pk, few.pk, few_again.pk]


@pytest.mark.django_db
def test_without_any_run_the_prior_is_computed_and_without_reviews_it_is_the_midpoint():
    profile = make_profile()
    assert ratings.priors_current().contractor == ratings.PRIOR_MEAN_WITHOUT_REVIEWS
    reviews_of(make_profile(), [4, 5])
    assert ratings.priors_current().contractor == Decimal("4.5000")
    profile = ratings.contractor_rating_recalculate(contractor_id=profile.user_id)
    assert (profile.rating_count, profile.rating_average, profile.rating_bayesian) == (
        0, Decimal("0.00"), Decimal("4.5000"))


# --- A burst of review events: one recalculation ------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_fifty_review_events_for_one_profile_run_one_recalculation(
        request, broker, clean_stats, settings):
    # given a contractor with 30 completed orders, each from its own client
    settings.RATING_RECALC_DEBOUNCE_SECONDS = 0.5
    prior(contractor="4.0000")
    profile = make_profile()
    work = orders(profile.user, 30)

    # when 50 review events commit in separate transactions: 30 created, 15 edited,
    # 5 removed (no worker runs meanwhile, so none can start before the burst is over)
    written = []
    for order in work:
        with transaction.atomic():
            written.append(review_create(order=order, author=order.client, rating=5))
    for review in written[:15]:
        with transaction.atomic():
            review_update(review=review, author=review.author, rating=3)
    for review in written[25:]:
        with transaction.atomic():
            review_remove(review=review, by=review.author)

    # and the worker runs what they queued
    time.sleep(0.5)
    worker = request.getfixturevalue("worker")
    drain(broker, worker)

    # then exactly one recalculation was queued and ran
    runs = counts_of("contractor_rating_recalculate")
    assert (runs.enqueued, runs.succeeded, runs.failed) == (1, 1, 0)
    # with the figures of the 25 reviews left: 15 × 3 + 10 × 5 = 95
    profile.refresh_from_db()
    assert (profile.rating_count, profile.rating_average, profile.rating_bayesian) == (
        25, Decimal("3.80"), q4(Decimal(40 + 95) / 35))
    assert Review.objects.filter(subject=profile.user).count() == 25


# --- The nightly full run --------------------------------------------------------------------

@pytest.mark.django_db
def test_the_run_walks_chunks_and_resumes_from_its_last_id(settings):
    # given five profiles, chunks of two, and a started run
    settings.RATING_RECALC_CHUNK_SIZE = 2
    profiles = [make_profile() for _ in range(5)]
    for profile in profiles:
        reviews_of(profile, [4])
    run = ratings.rating_run_start()

    # when one chunk is done
    assert ratings.rating_run_step(run.pk) is True
    run.refresh_from_db()

    # then the first two profiles are recalculated, the others not yet
    assert run.last_id == profiles[1].pk
    counted = dict(ContractorProfile.objects.values_list("pk", "rating_count"))
    assert [counted[p.pk] for p in profiles] == [1, 1, 0, 0, 0]

    # when a profile of the done chunk and one of a later chunk get a review meanwhile
    reviews_of(profiles[0], [5])
    reviews_of(profiles[4], [5])
    while ratings.rating_run_step(run.pk):
        pass

    # then the run went on from its last id: the later one is counted, the done one not
    counted = dict(ContractorProfile.objects.values_list("pk", "rating_count"))
    assert [counted[p.pk] for p in profiles] == [1, 1, 1, 1, 2]
    run.refresh_from_db()
    assert run.status == RatingRun.Status.DONE and run.finished_at is not None
    assert run.counts["profiles"] == 5
    # and a message delivered again after the end changes nothing
    assert ratings.rating_run_step(run.pk) is False


@pytest.mark.django_db(transaction=True)
def test_the_nightly_run_goes_message_by_message_through_a_worker(
        broker, worker, clean_stats, settings, monkeypatch):
    # given chunks of two and one chunk per message
    settings.RATING_RECALC_CHUNK_SIZE = 2
    monkeypatch.setattr(ratings, "MESSAGE_BUDGET_S", 0)
    prior(contractor="4.0000", client="4.0000")
    profiles = [make_profile() for _ in range(5)]
    for profile in profiles:
        reviews_of(profile, [5, 4])
    client_order = orders(profiles[0].user, 1)[0]
    Review.objects.create(order=client_order, author=profiles[0].user,
                          subject_id=client_order.client_id, subject_role=ReviewSubject.CLIENT,
                          rating=2)

    # when the schedule's actor runs
    ratings_recalculate.send()
    drain(broker, worker)

    # then every profile and the client are recalculated, by one message per chunk
    run = RatingRun.objects.latest("pk")
    assert run.status == RatingRun.Status.DONE
    assert set(ContractorProfile.objects.values_list("rating_count", "rating_average")) == {
        (2, Decimal("4.50"))}
    client = ClientRating.objects.get(user_id=client_order.client_id)
    assert (client.rating_count, client.rating_average) == (1, Decimal("2.00"))
    # contractor chunks (3), the phase change with the first user chunk, the rest of the
    # users' chunks, and the last message finding nothing left
    user_chunks = -(-User.objects.count() // 2)
    messages = counts_of("ratings_recalculate")
    assert messages.succeeded == 3 + user_chunks + 1


@pytest.mark.django_db
def test_a_second_run_changes_nothing_and_a_new_run_abandons_an_unfinished_one():
    prior(contractor="4.0000")
    reviews_of(make_profile(), [5, 3])
    first = ratings.rating_run_start()
    while ratings.rating_run_step(first.pk):
        pass
    assert RatingRun.objects.get(pk=first.pk).counts["profiles_changed"] == 1

    second = ratings.rating_run_start()
    while ratings.rating_run_step(second.pk):
        pass
    second.refresh_from_db()
    assert (second.counts["profiles"], second.counts["profiles_changed"],
            second.counts["clients_changed"]) == (1, 0, 0)

    unfinished = ratings.rating_run_start()
    newer = ratings.rating_run_start()
    unfinished.refresh_from_db()
    assert unfinished.status == RatingRun.Status.ABANDONED
    assert ratings.rating_run_step(unfinished.pk) is False
    assert newer.status == RatingRun.Status.RUNNING


@pytest.mark.django_db
def test_a_removed_clients_last_review_removes_their_rating():
    prior(client="4.0000")
    profile = make_profile()
    order = orders(profile.user, 1)[0]
    review = review_create(order=order, author=profile.user, rating=1)
    rating = ratings.client_rating_recalculate(client_id=order.client_id)
    assert (rating.rating_count, rating.rating_bayesian) == (1, q4(Decimal(41) / 11))

    review_remove(review=review, by=profile.user)
    assert ratings.client_rating_recalculate(client_id=order.client_id) is None
    assert not ClientRating.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_recalculation_logs_hold_no_personal_data(broker, worker, stderr_output):
    profile = make_profile(business_name="Secret Business Name")
    client = make_user(first_name="Zebulon")
    order = orders(profile.user, 1, client=client)[0]
    review_create(order=order, author=client, rating=5, text="Private words")
    ratings_recalculate.send()
    drain(broker, worker)

    logged = stderr_output.getvalue()
    assert "rating run done" in logged
    for personal in ("Secret Business Name", "Zebulon", client.email, profile.user.email,
                     "Private words"):
        assert personal not in logged


@pytest.mark.django_db
def test_orders_created_before_this_release_have_no_acceptance_time():
    profile = make_profile()
    orders(profile.user, 6)
    assert not Order.objects.filter(accepted_at__isnull=False).exists()
    assert "fast_responder" not in ratings.contractor_rating_recalculate(
        contractor_id=profile.user_id).badges
