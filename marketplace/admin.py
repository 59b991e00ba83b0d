from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm

from marketplace.models import (
    ChatMessage,
    City,
    ContractorProfile,
    Order,
    RefreshToken,
    Review,
    TradeCategory,
    User,
    UserSession,
)
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
    list_display = ("business_name", "city", "province", "rating_average", "rating_count",
                    "is_visible", "search_indexed_at")
    list_filter = ("province", "is_visible")
    search_fields = ("business_name", "city")
    raw_id_fields = ("user",)
    # Written by the search jobs (marketplace.search.index), shown for staff to check.
    readonly_fields = ("search_latitude", "search_longitude", "search_indexed_at")
    actions = ["search_reindex"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        search_index_profile_changed(profile_id=obj.pk)

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
    list_display = ("id", "order", "rating", "created_at")
    list_filter = ("rating",)
    raw_id_fields = ("order", "author", "subject")


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
