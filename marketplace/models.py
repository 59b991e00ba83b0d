"""The marketplace records Jobsite's background jobs serve.

Times are stored in UTC. Amounts are integer cents in CAD. Nothing here runs business
logic on save: writes go through ``marketplace.services``.
"""

import uuid
import zoneinfo

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.indexes import GinIndex
from django.contrib.postgres.search import SearchVectorField
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Province(models.TextChoices):
    AB = "AB", "Alberta"
    BC = "BC", "British Columbia"
    MB = "MB", "Manitoba"
    NB = "NB", "New Brunswick"
    NL = "NL", "Newfoundland and Labrador"
    NS = "NS", "Nova Scotia"
    NT = "NT", "Northwest Territories"
    NU = "NU", "Nunavut"
    ON = "ON", "Ontario"
    PE = "PE", "Prince Edward Island"
    QC = "QC", "Quebec"
    SK = "SK", "Saskatchewan"
    YT = "YT", "Yukon"


class Language(models.TextChoices):
    ENGLISH = "en", "English"
    FRENCH = "fr", "Français"


def validate_time_zone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(_("%(value)s is not an IANA time zone."), params={"value": value})


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **fields) -> "User":
        if not email:
            raise ValueError("Users must have an email address.")
        user = self.model(email=self.normalize_email(email), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **fields) -> "User":
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **fields)

    def create_superuser(self, email: str, password: str | None = None, **fields) -> "User":
        fields["is_staff"] = True
        fields["is_superuser"] = True
        return self._create_user(email, password, **fields)


class User(AbstractBaseUser, PermissionsMixin):
    """A marketplace account: a client, a contractor, or staff. Logs in by email."""

    email = models.EmailField(unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    preferred_language = models.CharField(
        max_length=2, choices=Language.choices, default=Language.ENGLISH
    )
    time_zone = models.CharField(
        max_length=64, default="America/Toronto", validators=[validate_time_zone]
    )
    province = models.CharField(max_length=2, choices=Province.choices, blank=True)
    is_contractor = models.BooleanField(default=False)
    is_staff = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # When the user opened a verification link sent to their address (None: never).
    email_verified_at = models.DateTimeField(null=True, blank=True)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        # The id, not the address: str(user) ends up in logs and admin messages.
        return f"User #{self.pk}"

    def get_full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    def get_short_name(self) -> str:
        return self.first_name


class HiddenReason(models.TextChoices):
    """Why a contractor profile is hidden from search (``marketplace.badges.HIDING_RULES``
    holds the rules; blank: visible)."""

    ACCOUNT_INACTIVE = "account_inactive", "Account deactivated or deleted"
    NO_TRADE_CATEGORY = "no_trade_category", "Incomplete: no trade category"
    NO_CITY = "no_city", "Incomplete: no city"
    NO_PROVINCE = "no_province", "Incomplete: no province"
    LOW_RATED = "low_rated", "Persistently low rated"


# A visible profile with the badge of a Pro subscription (payments.models.subscriptions).
PRO_VISIBLE = models.Q(badges__contains=["pro"], is_visible=True)


class ContractorProfile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="contractor_profile")
    business_name = models.CharField(max_length=200)
    trade_categories = models.JSONField(default=list, blank=True)
    city = models.CharField(max_length=100)
    province = models.CharField(max_length=2, choices=Province.choices)
    latitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    longitude = models.DecimalField(max_digits=9, decimal_places=6, null=True, blank=True)
    # Rating figures, badges and visibility are written by ``marketplace.ratings`` only
    # (from the reviews, orders and the rules in ``marketplace.badges``), never edited.
    rating_average = models.DecimalField(max_digits=3, decimal_places=2, default=0,
                                         help_text="Plain average of the reviews.")
    rating_count = models.PositiveIntegerField(default=0)
    # (C·m + sum) / (C + n): see marketplace.ratings. Search and listings rank on it.
    rating_bayesian = models.DecimalField(max_digits=5, decimal_places=4, default=0,
                                          help_text="Bayesian average (ranking).")
    rating_updated_at = models.DateTimeField(
        null=True, blank=True, help_text="When the rating figures, badges or visibility last "
                                         "changed.")
    badges = models.JSONField(default=list, blank=True)
    is_visible = models.BooleanField(default=True)
    hidden_reason = models.CharField(max_length=30, choices=HiddenReason.choices, blank=True,
                                     help_text="Why the profile is hidden from search.")
    created_at = models.DateTimeField(default=timezone.now)
    # What the contractor says about their work (EN or FR); searched, with the least weight.
    description = models.TextField(blank=True)
    # The search entry (marketplace.search.index): written by the search jobs only, from
    # the fields above, the trade categories' labels and the City table.
    search_vector = SearchVectorField(null=True, editable=False)
    # Where search places the profile: its own coordinates, else its city's.
    search_latitude = models.FloatField(null=True, editable=False)
    search_longitude = models.FloatField(null=True, editable=False)
    search_indexed_at = models.DateTimeField(null=True, editable=False)
    # A digest of what the entry was built from: the nightly walk skips unchanged ones.
    search_source = models.UUIDField(null=True, editable=False)

    class Meta:
        indexes = [
            GinIndex(fields=["search_vector"], name="profile_search_vector"),
            # "near this city": a bounding box on this index, then the exact distance.
            # Plain columns, so the planner knows from their statistics how many profiles
            # a box holds (it has none for a point in a box): a big city's box is then
            # intersected with the text's GIN bitmap rather than walked on its own.
            models.Index(fields=["search_latitude", "search_longitude"],
                         name="profile_search_location"),
            GinIndex(fields=["trade_categories"], opclasses=["jsonb_path_ops"],
                     name="profile_trade_categories"),
            # The same three over visible Pro profiles only: search reads its page from
            # them first (marketplace.search.backends), a small fraction of any match.
            GinIndex(fields=["search_vector"], condition=PRO_VISIBLE,
                     name="profile_search_vector_pro"),
            models.Index(fields=["search_latitude", "search_longitude"],
                         condition=PRO_VISIBLE, name="profile_search_location_pro"),
            GinIndex(fields=["trade_categories"], opclasses=["jsonb_path_ops"],
                     condition=PRO_VISIBLE, name="profile_trade_categories_pro"),
        ]

    def __str__(self) -> str:
        return self.business_name


class OrderStatus(models.TextChoices):
    # Translated labels (marketplace/locale/): the order-status email shows them too.
    OPEN = "open", pgettext_lazy("order status", "Open")
    ACCEPTED = "accepted", pgettext_lazy("order status", "Accepted")
    IN_PROGRESS = "in_progress", pgettext_lazy("order status", "In progress")
    COMPLETED = "completed", pgettext_lazy("order status", "Completed")
    CANCELLED = "cancelled", pgettext_lazy("order status", "Cancelled")


class Order(models.Model):
    client = models.ForeignKey(User, on_delete=models.PROTECT, related_name="orders_placed")
    # Indexed by order_contractor_accepted below (it leads with the contractor).
    contractor = models.ForeignKey(
        User, on_delete=models.PROTECT, related_name="orders_taken", null=True, blank=True,
        db_index=False,
    )
    title = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=OrderStatus.choices, default=OrderStatus.OPEN, db_index=True
    )
    subtotal_cents = models.PositiveBigIntegerField(default=0)
    tax_cents = models.PositiveBigIntegerField(default=0)
    total_cents = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="CAD")
    province = models.CharField(max_length=2, choices=Province.choices)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    # When a contractor took the order (the fast-responder badge measures created → accepted).
    accepted_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(total_cents=models.F("subtotal_cents") + models.F("tax_cents")),
                name="order_total_is_subtotal_plus_tax",
            ),
        ]
        indexes = [
            # The ratings read a contractor's completed orders and recent acceptances from
            # this index alone (index-only scans): measured 5x faster than the plain FK
            # index on the nightly run (README "Ratings, badges and visibility").
            models.Index(fields=["contractor", "accepted_at"], include=["created_at", "status"],
                         name="order_contractor_accepted"),
        ]

    def __str__(self) -> str:
        return f"Order #{self.pk}"


class ReviewSubject(models.TextChoices):
    """Who a review rates: the order's contractor (written by its client) or the order's
    client (written by its contractor)."""

    CONTRACTOR = "contractor", "Contractor (by the client)"
    CLIENT = "client", "Client (by the contractor)"


class Review(models.Model):
    """One side's review of the other on a completed order. Written, edited and removed
    through ``marketplace.reviews``; a removed review is deleted (it stops counting
    everywhere, and the audit trail keeps who removed it, when, and its rating)."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="reviews")
    author = models.ForeignKey(User, on_delete=models.CASCADE, related_name="reviews_written")
    # Indexed by the (subject, subject_role) index below, which serves the FK too.
    subject = models.ForeignKey(User, on_delete=models.CASCADE, related_name="reviews_received",
                                db_index=False)
    subject_role = models.CharField(max_length=10, choices=ReviewSubject.choices,
                                    default=ReviewSubject.CONTRACTOR)
    rating = models.PositiveSmallIntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(5)]
    )
    text = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    edited_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["order", "author"], name="one_review_per_order_author"),
            models.CheckConstraint(
                condition=models.Q(rating__gte=1, rating__lte=5), name="review_rating_1_to_5"
            ),
        ]
        indexes = [
            # The ratings' aggregates read (count, sum) of one subject's reviews of one kind
            # from this index alone (index-only scans), chunk by chunk.
            models.Index(fields=["subject", "subject_role"], include=["rating"],
                         name="review_subject_role_rating"),
        ]

    def __str__(self) -> str:
        return f"Review #{self.pk} ({self.rating}/5)"


class ChatMessage(models.Model):
    thread_id = models.UUIDField(default=uuid.uuid4, db_index=True)
    sender = models.ForeignKey(User, on_delete=models.CASCADE, related_name="messages_sent")
    recipient = models.ForeignKey(User, on_delete=models.CASCADE, related_name="messages_received")
    body = models.TextField()
    is_read = models.BooleanField(default=False)
    is_important = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Message #{self.pk}"


class UserSession(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="app_sessions")
    # SHA-256 of the session key: the key itself is a credential and is never stored.
    session_key_hash = models.CharField(max_length=64, unique=True)
    device = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now, db_index=True)
    expires_at = models.DateTimeField(db_index=True)
    is_active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return f"Session #{self.pk}"


class RefreshToken(models.Model):
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="refresh_tokens")
    session = models.ForeignKey(
        UserSession, on_delete=models.CASCADE, related_name="refresh_tokens", null=True, blank=True
    )
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_activity_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(db_index=True)
    is_active = models.BooleanField(default=True)
    revoked = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"Refresh token #{self.pk}"


class ClientRating(models.Model):
    """A client's rating from the reviews their orders' contractors wrote (the figures
    ``ContractorProfile`` holds for contractors). Clients have no profile: the row exists
    while the client has at least one review, and is written by ``marketplace.ratings``
    only."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, primary_key=True,
                                related_name="client_rating")
    rating_count = models.PositiveIntegerField(default=0)
    rating_average = models.DecimalField(max_digits=3, decimal_places=2, default=0)
    rating_bayesian = models.DecimalField(max_digits=5, decimal_places=4, default=0)
    rating_updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"Client rating of user #{self.user_id}"


class RatingRun(models.Model):
    """One full recalculation of every rating (the nightly ``ratings-recalculate``): the
    prior means it computed first, where it is, what it changed. Single-subject
    recalculations use the priors of the latest run."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        ABANDONED = "abandoned", "Abandoned (a newer run started)"

    class Phase(models.TextChoices):
        CONTRACTORS = "contractors", "Contractor profiles"
        CLIENTS = "clients", "Client ratings"

    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    phase = models.CharField(max_length=12, choices=Phase.choices, default=Phase.CONTRACTORS)
    last_id = models.BigIntegerField(default=0, help_text="Resumes after this id (profile id "
                                                          "or user id, by phase).")
    confidence = models.DecimalField(max_digits=8, decimal_places=2,
                                     help_text="C of the Bayesian average in this run.")
    contractor_prior_mean = models.DecimalField(max_digits=5, decimal_places=4)
    contractor_reviews = models.PositiveBigIntegerField(default=0)
    client_prior_mean = models.DecimalField(max_digits=5, decimal_places=4)
    client_reviews = models.PositiveBigIntegerField(default=0)
    counts = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Rating run #{self.pk}"


# The search's reference tables live with the search code; Django finds models here.
from marketplace.search.models import City, TradeCategory  # noqa: E402,F401
