"""Admin: the email log (read-only), consent, the blacklist, in-app notifications, and two
email actions on users (send a verification or a password-reset link).

Staff add and remove blacklisted addresses on the suppression list; the admin calls the
services so each change is audited.
"""

from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from notifications.kinds import EmailContentError
from notifications.models import (
    EmailKind,
    EmailLog,
    EmailPreference,
    Notification,
    Suppression,
    SuppressionReason,
)
from notifications.services.sending import send_email
from notifications.services.suppression import suppression_add, suppression_remove


@admin.register(EmailLog)
class EmailLogAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "user_id", "status", "attempts", "created_at", "sent_at")
    list_filter = ("status", "kind")
    search_fields = ("=id", "=user__id", "=esp_message_id", "=message_id")
    readonly_fields = [f.name for f in EmailLog._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    list_display = ("id", "email", "reason", "source", "created_at")
    list_filter = ("reason", "source")
    search_fields = ("email",)
    fields = ("email", "reason", "source", "created_by", "created_at")
    readonly_fields = ("source", "created_by", "created_at")

    def get_changeform_initial_data(self, request):
        return {"reason": SuppressionReason.MANUAL}

    def has_change_permission(self, request, obj=None):
        # An entry is added or removed, not edited.
        return obj is None and super().has_change_permission(request, obj)

    def save_model(self, request, obj, form, change):
        created = suppression_add(
            email=obj.email, reason=obj.reason, source="admin", created_by=request.user
        )
        obj.pk = created.pk

    def delete_model(self, request, obj):
        suppression_remove(suppression=obj, removed_by=request.user)

    def delete_queryset(self, request, queryset):
        for suppression in queryset:
            suppression_remove(suppression=suppression, removed_by=request.user)


@admin.register(EmailPreference)
class EmailPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user_id", "marketing", "digest", "updated_at")
    list_filter = ("marketing", "digest")
    search_fields = ("=user__id",)
    readonly_fields = ("user", "marketing", "digest", "unsubscribe_nonce", "updated_at")

    def has_add_permission(self, request):
        # Consent is the user's to change (and is audited); staff only look.
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("id", "user_id", "kind", "is_read", "is_important", "created_at")
    list_filter = ("kind", "is_read", "is_important")
    raw_id_fields = ("user",)


# --- Email actions on the user admin ----------------------------------------------------
# The marketplace owns users and knows nothing of email: this app adds its staff actions to
# the user admin the marketplace registered (apps' admin modules load in INSTALLED_APPS
# order, marketplace first).


def _send_to_users(modeladmin, request, queryset, kind: EmailKind) -> None:
    outcomes: dict[str, int] = {}
    for user in queryset.order_by("pk"):
        try:
            status = send_email(kind=kind, user_id=user.pk).status
        except EmailContentError:
            status = "no valid address"
        outcomes[status] = outcomes.get(status, 0) + 1
    summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
    modeladmin.message_user(request, f"{EmailKind(kind).label} email: {summary}.",
                            messages.SUCCESS if "queued" in outcomes else messages.WARNING)


@admin.action(description="Send an email-verification link")
def send_verification_email(modeladmin, request, queryset):
    _send_to_users(modeladmin, request, queryset, EmailKind.EMAIL_VERIFICATION)


@admin.action(description="Send a password-reset link")
def send_password_reset_email(modeladmin, request, queryset):
    _send_to_users(modeladmin, request, queryset, EmailKind.PASSWORD_RESET)


_user_admin = admin.site.get_model_admin(get_user_model())
_user_admin.actions = [*(_user_admin.actions or []), send_verification_email,
                       send_password_reset_email]
