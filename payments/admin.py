from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils import timezone

from audit.services import audit_log_record
from jobs.admin import ReadOnlyAdmin
from payments.models import (
    Dispute,
    JournalEntry,
    JournalLine,
    Payment,
    PaymentArchive,
    Receipt,
    StripeEvent,
    Subscription,
    TaxRate,
)
from payments.services.events import stripe_event_replay

PAYLOAD_PERMISSION = "payments.view_stripe_payload"
REDACTED = "(encrypted; shown with the 'Can view Stripe event payloads' permission)"


@admin.register(Payment)
class PaymentAdmin(ReadOnlyAdmin):
    """Read-only: payments are written by the Stripe handlers and never deleted here."""

    list_display = ("id", "order_id", "status", "amount_cents", "tax_cents", "currency",
                    "created_at")
    list_filter = ("status",)
    search_fields = ("=id", "=stripe_payment_intent_id")
    exclude = ("billing_details",)

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
class StripeEventAdmin(ReadOnlyAdmin):
    """Every Stripe event as delivered; staff replay one through its handler. The payload
    is encrypted at rest and shown only with the payload permission."""

    list_display = ("stripe_id", "type", "status", "attempts", "last_error", "received_at")
    list_filter = ("status", "type", "source")
    search_fields = ("=stripe_id", "=object_id")
    exclude = ("payload",)
    actions = ("replay",)

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


@admin.register(Subscription)
class SubscriptionAdmin(ReadOnlyAdmin):
    """Read-only: the mirror of Stripe's subscriptions, written by the event handlers and
    the daily runs (payments.services.subscriptions). Changes are made in Stripe."""

    list_display = ("id", "user_id", "status", "features_active", "cancel_at_period_end",
                    "current_period_end", "past_due_since", "grace_until", "suspended_at",
                    "ended_at")
    list_filter = ("status", "features_active", "cancel_at_period_end")
    search_fields = ("=id", "=stripe_subscription_id", "=stripe_customer_id", "=user__id")


class TaxRateForm(forms.ModelForm):
    class Meta:
        model = TaxRate
        fields = ("province", "tax_type", "rate_percent", "effective_from", "source")

    def clean_effective_from(self):
        day = self.cleaned_data["effective_from"]
        if day <= timezone.localdate():
            # Changing a rate already in effect would change what recomputing a past
            # payment gives: such a correction goes through a reviewed migration.
            raise ValidationError("A new rate takes effect on a future date.")
        return day


@admin.register(TaxRate)
class TaxRateAdmin(admin.ModelAdmin):
    """Sales tax rates by province and date. Staff add the row of a legislated change before
    its date, with its source (no deploy needed; audited with who made it). A row is
    editable or removable only until its date: from then on it is the record of what was
    charged and stays as it is."""

    list_display = ("province", "tax_type", "rate_percent", "effective_from", "created_at")
    list_filter = ("province", "tax_type")
    form = TaxRateForm
    actions = None  # no bulk delete: a row is removed from its own page, and audited there

    @staticmethod
    def in_effect(obj: TaxRate | None) -> bool:
        return obj is not None and obj.effective_from <= timezone.localdate()

    def has_change_permission(self, request, obj=None) -> bool:
        return super().has_change_permission(request, obj) and not self.in_effect(obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return super().has_delete_permission(request, obj) and not self.in_effect(obj)

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        action = "payments.tax_rate_changed" if change else "payments.tax_rate_added"
        audit_log_record(action=action, resource=obj, actor=request.user, is_critical=True,
                         metadata=self.audit_metadata(obj))

    def delete_model(self, request, obj):
        metadata = self.audit_metadata(obj)
        pk = obj.pk
        super().delete_model(request, obj)
        audit_log_record(action="payments.tax_rate_deleted", resource=TaxRate, resource_id=pk,
                         actor=request.user, is_critical=True, metadata=metadata)

    @staticmethod
    def audit_metadata(obj: TaxRate) -> dict[str, str]:
        return {"province": obj.province, "tax_type": obj.tax_type,
                "rate_percent": str(obj.rate_percent),
                "effective_from": obj.effective_from.isoformat()}


class ReadOnlyInline(admin.TabularInline):
    """Rows shown with their parent, never added, changed or deleted here."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class JournalLineInline(ReadOnlyInline):
    model = JournalLine
    fields = ("account", "debit_cents", "credit_cents", "tax_type", "province")
    readonly_fields = fields


@admin.register(JournalEntry)
class JournalEntryAdmin(ReadOnlyAdmin):
    """The journal, read-only: entries are posted by the payment handlers and the fee and
    dispute postings (payments.services.accounting), never edited or deleted; a correction
    is a new entry."""

    list_display = ("id", "kind", "payment_id", "source_key", "currency", "posted_at",
                    "archived_at")
    list_filter = ("kind",)
    search_fields = ("=payment__id", "source_key")
    readonly_fields = ("kind", "payment", "source_key", "currency", "posted_at", "created_at",
                       "archived_at")
    inlines = (JournalLineInline,)


@admin.register(PaymentArchive)
class PaymentArchiveAdmin(ReadOnlyAdmin):
    """Verified batches of manage.py archive_payments: keys, counts and SHA-256 only."""

    list_display = ("id", "first_payment_id", "last_payment_id", "payments_marked",
                    "storage_class", "cutoff", "created_at")
    readonly_fields = [f.name for f in PaymentArchive._meta.fields]


@admin.register(Receipt)
class ReceiptAdmin(ReadOnlyAdmin):
    list_display = ("label", "payment_id", "total_cents", "currency", "language", "status",
                    "issued_at")
    list_filter = ("status", "language")
    search_fields = ("=number", "=payment__id")
    exclude = ("order_title",)  # the client's own words: on the receipt, not in lists


class DisputeOpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return (("open", "Open"), ("closed", "Closed"))

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(closed_at__isnull=True)
        if self.value() == "closed":
            return queryset.filter(closed_at__isnull=False)
        return queryset


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyAdmin):
    """Disputes by evidence due date, the soonest first (Stripe's status and dates)."""

    list_display = ("id", "stripe_dispute_id", "payment_id", "status", "reason",
                    "amount_cents", "currency", "evidence_due_by", "opened_at", "closed_at",
                    "outcome")
    list_filter = (DisputeOpenFilter, "status", "reason")
    search_fields = ("=stripe_dispute_id", "=payment__id", "=payment__order__id")
    ordering = ("evidence_due_by", "id")
