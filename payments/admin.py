from django.contrib import admin

from payments.models import Payment, StripeEvent
from payments.services.events import stripe_event_replay

PAYLOAD_PERMISSION = "payments.view_stripe_payload"
REDACTED = "(encrypted; shown with the 'Can view Stripe event payloads' permission)"


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    """Read-only: payments are written by the Stripe handlers and never deleted here."""

    list_display = ("id", "order_id", "status", "amount_cents", "tax_cents", "currency",
                    "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "=stripe_payment_intent_id")

    exclude = ("billing_details",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        # Personal data (billing name, email, address): decrypted only for those allowed.
        allowed = request.user.has_perm(PAYLOAD_PERMISSION)
        return ("billing_details_shown" if allowed else "billing_details_redacted",)

    @admin.display(description="Billing details")
    def billing_details_shown(self, obj) -> str:
        from jobs.encryption import decrypt_json

        return str(decrypt_json(obj.billing_details)) if obj.billing_details else "—"

    @admin.display(description="Billing details")
    def billing_details_redacted(self, obj) -> str:
        return REDACTED if obj.billing_details else "—"


@admin.register(StripeEvent)
class StripeEventAdmin(admin.ModelAdmin):
    """Every Stripe event as delivered; staff replay one through its handler. The payload
    is encrypted at rest and shown only with the payload permission."""

    list_display = ("stripe_id", "type", "status", "source", "attempts", "last_error",
                    "created", "received_at", "processed_at")
    list_filter = ("status", "type", "source")
    search_fields = ("=stripe_id", "=object_id")
    exclude = ("payload",)
    actions = ("replay",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_readonly_fields(self, request, obj=None):
        allowed = request.user.has_perm(PAYLOAD_PERMISSION)
        return [f.name for f in StripeEvent._meta.fields if f.name != "payload"] + [
            "payload_shown" if allowed else "payload_redacted"]

    @admin.display(description="Payload")
    def payload_shown(self, obj) -> str:
        from payments.services.events import payload_decrypt

        return payload_decrypt(obj.payload).decode() if obj.payload else "—"

    @admin.display(description="Payload")
    def payload_redacted(self, obj) -> str:
        return REDACTED if obj.payload else "—"

    @admin.action(description="Replay through its handler", permissions=["view"])
    def replay(self, request, queryset):
        replayed = sum(stripe_event_replay(event=event) for event in queryset)
        self.message_user(request, f"{replayed} event(s) queued for processing again.")
