"""Contractor profiles for the search tests, indexed the way the jobs index them."""

import itertools

from marketplace.models import ContractorProfile, User
from marketplace.search.index import search_reindex_step

_numbers = itertools.count(1)


def make_profile(business_name: str, *, city: str = "Toronto", province: str = "ON",
                 categories: list[str] | None = None, description: str = "",
                 latitude: str | None = None, longitude: str | None = None,
                 visible: bool = True, badges: list[str] | None = None) -> ContractorProfile:
    user = User.objects.create_user(f"pro{next(_numbers)}@example.test", None,
                                    is_contractor=True)
    return ContractorProfile.objects.create(
        user=user, business_name=business_name, city=city, province=province,
        trade_categories=categories or [], description=description, latitude=latitude,
        longitude=longitude, is_visible=visible, badges=badges or [])


def index_all() -> None:
    """Every profile's entry, as the nightly walk builds it (one big chunk)."""
    search_reindex_step(after_id=0, size=100_000)


def names(hits) -> list[str]:
    return [hit.business_name for hit in hits]
