from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import UserChangeForm, UserCreationForm

from marketplace.models import (
    ChatMessage,
    ContractorProfile,
    Order,
    RefreshToken,
    Review,
    User,
    UserSession,
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
                    "is_visible")
    list_filter = ("province", "is_visible")
    search_fields = ("business_name", "city")
    raw_id_fields = ("user",)


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
