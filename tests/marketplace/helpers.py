"""Marketplace rows for the ratings tests: contractors, clients, completed orders and
their reviews, made in bulk (a badge boundary needs fifty orders)."""

import itertools
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from marketplace.models import (
    ContractorProfile,
    Order,
    OrderStatus,
    RatingRun,
    Review,
    ReviewSubject,
    User,
)

_serial = itertools.count(1)


def make_user(*, contractor: bool = False, **fields) -> User:
    n = next(_serial)
    kind = "pro" if contractor else "client"
    return User.objects.create_user(f"{kind}{n}@example.test", "pw-test-123",
                                    is_contractor=contractor, **fields)


def make_profile(*, business_name: str = "Pro Plumbing", **fields) -> ContractorProfile:
    user_fields = {"is_active": fields.pop("is_active")} if "is_active" in fields else {}
    defaults = {"city": "Toronto", "province": "ON", "trade_categories": ["plumbing"]}
    return ContractorProfile.objects.create(user=make_user(contractor=True, **user_fields),
                                            business_name=business_name,
                                            **{**defaults, **fields})


def orders(contractor: User, count: int, *, client: User | None = None,
           status: str = OrderStatus.COMPLETED, accepted_after: timedelta | None = None,
           created_ago: timedelta = timedelta(days=10)) -> list[Order]:
    """``count`` orders of ``contractor`` (each with a new client unless given), created
    ``created_ago`` and accepted ``accepted_after`` their creation (None: never)."""
    created = timezone.now() - created_ago
    return Order.objects.bulk_create([
        Order(client=client or make_user(), contractor=contractor, title="Job", status=status,
              province="ON", created_at=created,
              accepted_at=None if accepted_after is None else created + accepted_after)
        for _ in range(count)])


def reviews_of(profile: ContractorProfile, ratings: list[int]) -> list[Review]:
    """One completed order per rating, each reviewed by its client."""
    made = orders(profile.user, len(ratings))
    return Review.objects.bulk_create([
        Review(order=order, author_id=order.client_id, subject=profile.user,
               subject_role=ReviewSubject.CONTRACTOR, rating=rating)
        for order, rating in zip(made, ratings, strict=True)])


def prior(contractor: str = "4.0000", client: str = "4.0000") -> RatingRun:
    """A finished run whose platform means the next recalculations use."""
    now = timezone.now()
    return RatingRun.objects.create(
        status=RatingRun.Status.DONE, confidence=10, contractor_prior_mean=Decimal(contractor),
        client_prior_mean=Decimal(client), started_at=now, finished_at=now)
