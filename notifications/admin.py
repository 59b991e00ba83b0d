"""Admin: the email log (read-only), consent, the blacklist, in-app notifications, push
(devices without their ids, preferences, the push log, campaigns with their progress), and
three actions on users (send a verification or a password-reset link, a push of their
latest order's status).

Staff add and remove blacklisted addresses on the suppression list; the admin calls the
services so each change is audited.
"""

from collections import Counter

from django.contrib import admin, messages
from django.contrib.auth import get_user_model

from marketplace.models import Order
from notifications.kinds import ContentError, EmailContentError
from notifications.models import (
    Device,
    EmailKind,
    EmailLog,
    EmailPreference,
    Notification,
    PushBatch,
    PushCampaign,
    PushCampaignStatus,
    PushKind,
    PushLog,
    PushPreference,
    PushStatus,
    Suppression,
    SuppressionReason,
)
from notifications.services.campaigns import push_campaign_start
from notifications.services.push import send_push
from notifications.services.push_consent import push_opt_out, push_preference_update
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


def _report(modeladmin, request, what: str, outcomes: Counter) -> None:
    """One message for a bulk send: how many of each outcome."""
    summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
    modeladmin.message_user(request, f"{what}: {summary}.",
                            messages.SUCCESS if "queued" in outcomes else messages.WARNING)


def _send_to_users(modeladmin, request, queryset, kind: EmailKind) -> None:
    outcomes: Counter = Counter()
    for user in queryset.order_by("pk"):
        try:
            outcomes[send_email(kind=kind, user_id=user.pk).status] += 1
        except EmailContentError:
            outcomes["no valid address"] += 1
    _report(modeladmin, request, f"{EmailKind(kind).label} email", outcomes)


@admin.action(description="Send an email-verification link")
def send_verification_email(modeladmin, request, queryset):
    _send_to_users(modeladmin, request, queryset, EmailKind.EMAIL_VERIFICATION)


@admin.action(description="Send a password-reset link")
def send_password_reset_email(modeladmin, request, queryset):
    _send_to_users(modeladmin, request, queryset, EmailKind.PASSWORD_RESET)


@admin.action(description="Send a push of their latest order's status")
def send_order_status_push(modeladmin, request, queryset):
    outcomes: Counter = Counter()
    for user in queryset.order_by("pk"):
        order = Order.objects.filter(client=user).order_by("-created_at").first()
        if order is None:
            outcomes["no order"] += 1
            continue
        outcomes[send_push(kind=PushKind.ORDER_STATUS, user_id=user.pk, context={
            "order_id": order.pk, "order_title": order.title,
            "status": order.status}).status] += 1
    _report(modeladmin, request, "Order status push", outcomes)


_user_admin = admin.site.get_model_admin(get_user_model())
_user_admin.actions = [*(_user_admin.actions or []), send_verification_email,
                       send_password_reset_email, send_order_status_push]


# --- Push ---------------------------------------------------------------------------------


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """Devices, without their subscription ids (encrypted, never shown)."""

    list_display = ("id", "user_id", "platform", "is_active", "last_seen_at",
                    "deactivated_reason")
    list_filter = ("platform", "is_active", "deactivated_reason")
    search_fields = ("=user__id",)
    fields = ("user", "platform", "is_active", "last_seen_at", "created_at", "deactivated_at",
              "deactivated_reason")
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(PushPreference)
class PushPreferenceAdmin(admin.ModelAdmin):
    list_display = ("user_id", "enabled", "promotional_consent", "opted_out_kinds",
                    "quiet_start", "quiet_end", "updated_at")
    list_filter = ("enabled", "promotional_consent")
    search_fields = ("=user__id",)
    readonly_fields = ("user", "enabled", "opted_out_kinds", "promotional_consent",
                       "promotional_consent_at", "promotional_consent_source", "quiet_start",
                       "quiet_end", "updated_at")
    actions = ("turn_push_off", "withdraw_promotional_consent")

    def has_add_permission(self, request):
        return False  # preferences are the user's; staff act through the actions

    @admin.action(description="Turn push off (the user asked)", permissions=["change"])
    def turn_push_off(self, request, queryset):
        for preference in queryset.select_related("user"):
            push_opt_out(user=preference.user, via=f"admin:{request.user.pk}")
        self.message_user(request, f"Push turned off for {queryset.count()} user(s).")

    @admin.action(description="Withdraw promotional consent", permissions=["change"])
    def withdraw_promotional_consent(self, request, queryset):
        for preference in queryset.select_related("user"):
            push_preference_update(user=preference.user, via=f"admin:{request.user.pk}",
                                   promotional_consent=False)
        self.message_user(request, f"Consent withdrawn for {queryset.count()} user(s).")


@admin.register(PushLog)
class PushLogAdmin(admin.ModelAdmin):
    list_display = ("id", "kind", "user_id", "status", "reason", "attempts", "send_at",
                    "sent_at", "campaign_id")
    list_filter = ("status", "kind")
    search_fields = ("=id", "=user__id", "=provider_id", "=message_id")
    readonly_fields = [f.name for f in PushLog._meta.fields]
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class PushBatchInline(admin.TabularInline):
    model = PushBatch
    fields = ("number", "send_at", "size", "status", "attempts", "sent_at", "last_error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(PushCampaign)
class PushCampaignAdmin(admin.ModelAdmin):
    """Staff write a campaign (a draft), then start it; progress is shown per batch."""

    list_display = ("name", "kind", "status", "recipients", "skipped", "progress",
                    "started_at", "finished_at")
    list_filter = ("status", "kind")
    fields = ("name", "kind", "context", "platform", "status", "recipients", "skipped",
              "progress", "started_at", "finished_at")
    readonly_fields = ("status", "recipients", "skipped", "progress", "started_at",
                       "finished_at")
    inlines = [PushBatchInline]
    actions = ("start_sending",)

    @admin.display(description="batches sent")
    def progress(self, obj: PushCampaign) -> str:
        total = obj.batches.count()
        sent = obj.batches.filter(status=PushStatus.SENT).count()
        return f"{sent} / {total}"

    def get_readonly_fields(self, request, obj=None):
        if obj is not None and obj.status != PushCampaignStatus.DRAFT:
            return self.fields  # started: a record
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        if obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    @admin.action(description="Start sending (checks every recipient, then batches)")
    def start_sending(self, request, queryset):
        for campaign in queryset:
            try:
                started = push_campaign_start(campaign=campaign, user=request.user)
            except ContentError as exc:
                self.message_user(request, f"{campaign}: {exc}", messages.ERROR)
                continue
            self.message_user(request, f"{campaign}: " + (
                "sending." if started else "already started."),
                messages.SUCCESS if started else messages.WARNING)
