from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html, format_html_join

from jobs.admin import ReadOnlyAdmin
from marketplace import badges as badge_rules
from marketplace.models import (
    ChatMessage,
    City,
    ClientRating,
    ContractorProfile,
    HiddenReason,
    Order,
    RatingRun,
    RefreshToken,
    Review,
    ReviewSubject,
    TradeCategory,
    User,
    UserSession,
)
from marketplace.ratings import RATING_ORDER, contractor_figures, rating_recalculate_later
from marketplace.reviews import review_remove
from marketplace.search.index import (
    search_index_profile_changed,
    search_profiles_reindex_enqueue,
)


class UserCreateForm(UserCreationForm):
    class Meta:
        model = User
        fields = ("email",)


class UserEditForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserEditForm
    add_form = UserCreateForm
    ordering = ("id",)
    list_display = ("id", "email", "preferred_language", "is_contractor", "is_staff",
                    "last_activity_at")
    list_filter = ("is_staff", "is_active", "is_contractor", "preferred_language", "province")
    search_fields = ("email", "first_name", "last_name")
    fieldsets = (
        (None, {"fields": ("email", "email_verified_at", "password")}),
        ("Profile", {"fields": ("first_name", "last_name", "preferred_language", "time_zone",
                                "province", "is_contractor")}),
        ("Permissions", {"fields": ("is_active", "is_staff", "is_superuser", "groups",
                                    "user_permissions")}),
        ("Dates", {"fields": ("last_login", "date_joined", "last_activity_at")}),
    )
    readonly_fields = ("email_verified_at",)  # set by the verification link only
    add_fieldsets = ((None, {"classes": ("wide",),
                             "fields": ("email", "password1", "password2")}),)


@admin.register(ContractorProfile)
class ContractorProfileAdmin(admin.ModelAdmin):
    """Rating figures, badges and visibility are computed (``marketplace.ratings``, rules
    in ``marketplace.badges``): shown with their rules, never edited here."""

    list_display = ("business_name", "city", "province", "rating_bayesian", "rating_count",
                    "rating_average", "badge_list", "is_visible", "hidden_reason")
    list_filter = ("province", "is_visible", "hidden_reason")
    search_fields = ("business_name", "city")
    raw_id_fields = ("user",)
    ordering = RATING_ORDER
    actions = ["recalculate_ratings", "search_reindex"]
    fieldsets = (
        (None, {"fields": ("user", "business_name", "trade_categories", "city", "province",
                           "latitude", "longitude", "description", "created_at")}),
        ("Rating", {"fields": ("rating_bayesian", "rating_count", "rating_average",
                               "rating_updated_at", "figures_now")}),
        ("Badges", {"fields": ("badge_rules",)}),
        ("Visibility", {"fields": ("visibility",)}),
        # Written by the search jobs (marketplace.search.index), shown for staff to check.
        ("Search", {"fields": ("search_latitude", "search_longitude", "search_indexed_at")}),
    )
    readonly_fields = ("rating_bayesian", "rating_count", "rating_average", "rating_updated_at",
                       "figures_now", "badge_rules", "visibility", "search_latitude",
                       "search_longitude", "search_indexed_at")

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        search_index_profile_changed(profile_id=obj.pk)

    @admin.display(description="badges")
    def badge_list(self, obj: ContractorProfile) -> str:
        return ", ".join(obj.badges or []) or "—"

    @admin.display(description="Badges and their rules")
    def badge_rules(self, obj: ContractorProfile) -> str:
        held = set(obj.badges or [])
        rows = [(badge.label, "✔ held" if badge.name in held else "–", badge.rule)
                for badge in badge_rules.BADGES]
        rows += [(name, "✔ held", "set outside the ratings' rules") for name in obj.badges or []
                 if badge_rules.badge(name) is None]
        return format_html("<table>{}</table>", format_html_join(
            "", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows))

    @admin.display(description="Visibility")
    def visibility(self, obj: ContractorProfile) -> str:
        rules = format_html_join("", "<li>{}: {}</li>", (
            (HiddenReason(rule.reason).label, rule.rule) for rule in badge_rules.HIDING_RULES))
        state = ("Visible in search" if obj.is_visible else
                 f"Hidden from search: {HiddenReason(obj.hidden_reason).label}"
                 if obj.hidden_reason else "Hidden from search")
        return format_html("<strong>{}</strong><br>Hidden while any of these holds:<ul>{}</ul>",
                           state, rules)

    @admin.display(description="Figures now")
    def figures_now(self, obj: ContractorProfile) -> str:
        """What a recalculation would write now (the stored values change with the next
        one: after a review change, or nightly)."""
        if obj.pk is None:
            return "—"
        figures = contractor_figures(profile_id=obj.pk)
        if figures is None:
            return "—"
        median = figures["response_median_s"]
        return format_html(
            "{} reviews, sum {}, average {}; Bayesian {} (C = {}, platform mean m = {})<br>"
            "{} completed orders; {} accepted in the last {} days, median response {}<br>"
            "badges {}; {}",
            figures["review_count"], figures["review_sum"], figures["average"],
            figures["bayesian"], figures["confidence"], figures["prior_mean"],
            figures["completed_jobs"], figures["accepted_recent"],
            badge_rules.FAST_RESPONDER_WINDOW_DAYS,
            "—" if median is None else f"{median / 3600:.2f} h",
            ", ".join(figures["new_badges"]) or "none",
            f"hidden: {HiddenReason(figures['hidden_reason']).label}"
            if figures["hidden_reason"] else "visible")

    @admin.action(description="Recalculate ratings, badges and visibility (queued)")
    def recalculate_ratings(self, request, queryset) -> None:
        # Queued, never run in the request; a recalculation already pending covers it.
        user_ids = list(queryset.values_list("user_id", flat=True))
        for user_id in user_ids:
            rating_recalculate_later(subject_id=user_id, role=ReviewSubject.CONTRACTOR,
                                     delay_ms=0)
        self.message_user(request, f"Recalculation queued for {len(user_ids)} profile(s).",
                          messages.SUCCESS)

    @admin.action(description="Rebuild the search entry (a worker does it)",
                  permissions=["change"])
    def search_reindex(self, request, queryset):
        count = search_profiles_reindex_enqueue(
            profile_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"Queued the search entry of {count} profile(s) to be "
                                   "rebuilt.", messages.SUCCESS)


@admin.register(TradeCategory)
class TradeCategoryAdmin(admin.ModelAdmin):
    """Trade categories: their EN/FR names and search terms (indexed with every profile
    listing them: the next nightly reindex applies an edit) and their popularity, counted
    by the nightly reindex."""

    list_display = ("slug", "name_en", "name_fr", "contractor_count", "recent_order_count",
                    "counted_at")
    search_fields = ("slug", "name_en", "name_fr", "search_terms")
    readonly_fields = ("contractor_count", "recent_order_count", "counted_at")


@admin.register(City)
class CityAdmin(admin.ModelAdmin):
    """The places search can be near (seeded from GeoNames, README "Search")."""

    list_display = ("name", "province", "population", "latitude", "longitude")
    list_filter = ("province",)
    search_fields = ("name",)


class OrderDisputedFilter(admin.SimpleListFilter):
    """Orders with a payment under an open dispute (payments sets ``Payment.is_disputed``
    while one is open: the order's flag is derived from it, never stored twice)."""

    title = "disputed"
    parameter_name = "disputed"

    def lookups(self, request, model_admin):
        return (("yes", "Disputed"), ("no", "Not disputed"))

    def queryset(self, request, queryset):
        disputed = queryset.filter(payments__is_disputed=True).values("pk")
        if self.value() == "yes":
            return queryset.filter(pk__in=disputed)
        if self.value() == "no":
            return queryset.exclude(pk__in=disputed)
        return queryset


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("id", "title", "status", "total_cents", "currency", "province",
                    "is_disputed", "created_at")
    list_filter = ("status", "province", OrderDisputedFilter)
    search_fields = ("title",)
    raw_id_fields = ("client", "contractor")
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        from django.apps import apps
        from django.db.models import Exists, OuterRef

        payments = apps.get_model("payments", "Payment").objects  # payments builds on us
        disputed = payments.filter(order=OuterRef("pk"), is_disputed=True)
        return super().get_queryset(request).annotate(disputed=Exists(disputed))

    @admin.display(boolean=True, description="Disputed", ordering="disputed")
    def is_disputed(self, obj) -> bool:
        return obj.disputed


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    """Reviews are their authors' words: staff read them and may remove one (audited, the
    rating recalculated), never write or edit them."""

    list_display = ("id", "order", "subject_role", "rating", "created_at", "edited_at")
    list_filter = ("rating", "subject_role")
    raw_id_fields = ("order", "author", "subject")
    actions = ["remove_reviews"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a plain delete would skip the audit entry and the recalculation

    def has_remove_permission(self, request) -> bool:
        return request.user.has_perm("marketplace.delete_review")

    @admin.action(description="Remove selected reviews (audited; ratings recalculated)",
                  permissions=["remove"])
    def remove_reviews(self, request, queryset) -> None:
        removed = 0
        for review in queryset:
            try:
                review_remove(review=review, by=request.user)
            except PermissionDenied as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return
            removed += 1
        self.message_user(request, f"{removed} review(s) removed.", messages.SUCCESS)


@admin.register(ClientRating)
class ClientRatingAdmin(ReadOnlyAdmin):
    """Clients' ratings from their contractors' reviews (``marketplace.ratings``)."""

    list_display = ("user", "rating_bayesian", "rating_count", "rating_average",
                    "rating_updated_at")
    ordering = RATING_ORDER
    search_fields = ("=user__id",)


@admin.register(RatingRun)
class RatingRunAdmin(ReadOnlyAdmin):
    """Full recalculations (the nightly ``ratings-recalculate``, or its Run now)."""

    list_display = ("id", "status", "phase", "started_at", "finished_at", "seconds",
                    "contractor_prior_mean", "client_prior_mean", "confidence")
    list_filter = ("status",)

    @admin.display(description="seconds")
    def seconds(self, obj: RatingRun) -> str:
        if obj.finished_at is None:
            return "—"
        return f"{(obj.finished_at - obj.started_at).total_seconds():.1f}"


@admin.register(ChatMessage)
class ChatMessageAdmin(admin.ModelAdmin):
    list_display = ("id", "thread_id", "is_read", "is_important", "created_at")
    list_filter = ("is_read", "is_important")
    raw_id_fields = ("sender", "recipient")
    date_hierarchy = "created_at"


@admin.register(UserSession)
class UserSessionAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "device", "is_active", "last_activity_at", "expires_at")
    list_filter = ("is_active",)
    raw_id_fields = ("user",)
    readonly_fields = ("session_key_hash",)


@admin.register(RefreshToken)
class RefreshTokenAdmin(admin.ModelAdmin):
    list_display = ("id", "user", "is_active", "revoked", "expires_at")
    list_filter = ("is_active", "revoked")
    raw_id_fields = ("user", "session")
    readonly_fields = ("token_hash",)
