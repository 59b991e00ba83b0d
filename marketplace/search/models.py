"""The search's reference tables: Canadian cities (for "near this city") and trade
categories (their EN/FR labels, searched with the profiles, and their popularity).

Imported by ``marketplace.models``, so they are ordinary models of the ``marketplace`` app.
"""

from django.db import models
from django.db.models import F, Func
from django.db.models.functions import Lower

from marketplace.models import Province


def folded(expression) -> Func:
    """``lower(jobsite_unaccent(expression))``: the accent- and case-blind form names are
    compared in (``jobsite_unaccent`` is created by migration 0005)."""
    return Lower(Func(expression, function="jobsite_unaccent", output_field=models.TextField()))


class City(models.Model):
    """A Canadian place search can be "near". Seeded from GeoNames (README "Search");
    staff may add more."""

    name = models.CharField(max_length=100)
    province = models.CharField(max_length=2, choices=Province.choices)
    latitude = models.FloatField()
    longitude = models.FloatField()
    population = models.PositiveIntegerField(default=0)
    # The GeoNames record it came from (empty for a city staff added).
    geonames_id = models.PositiveIntegerField(null=True, blank=True, unique=True)

    class Meta:
        ordering = ["-population", "name"]
        verbose_name_plural = "cities"
        indexes = [models.Index(folded(F("name")), "province", name="city_folded_name")]
        constraints = [
            models.CheckConstraint(condition=models.Q(latitude__gte=-90, latitude__lte=90,
                                                      longitude__gte=-180, longitude__lte=180),
                                   name="city_coordinates_in_range"),
        ]

    def __str__(self) -> str:
        return f"{self.name}, {self.province}"


class TradeCategory(models.Model):
    """A trade a contractor lists in ``ContractorProfile.trade_categories`` (by ``slug``).

    Its labels and ``search_terms`` are indexed with every profile that lists it (weight
    B), so "électricien" finds a contractor of the ``electrical`` trade. The counts are the
    category's popularity, refreshed by the nightly reindex."""

    slug = models.SlugField(max_length=50, unique=True)
    name_en = models.CharField(max_length=100)
    name_fr = models.CharField(max_length=100)
    # More words, either language, that should find the trade ("wiring câblage").
    search_terms = models.CharField(max_length=300, blank=True)
    # Visible contractors that list the category.
    contractor_count = models.PositiveIntegerField(default=0, editable=False)
    # Orders created in the last POPULARITY_DAYS whose contractor lists the category (an
    # order counts once in each of its contractor's categories).
    recent_order_count = models.PositiveIntegerField(default=0, editable=False)
    counted_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-recent_order_count", "-contractor_count", "slug"]
        verbose_name_plural = "trade categories"

    def __str__(self) -> str:
        return self.name_en
