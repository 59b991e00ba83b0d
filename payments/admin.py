from django.contrib import admin

from payments.models import Payment


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    """Read-only: payments are written by the Stripe handlers and never deleted here."""

    list_display = ("id", "order_id", "status", "amount_cents", "tax_cents", "currency",
                    "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "=stripe_payment_intent_id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
