"""Admin: the retention policy (one page, from ``retention.policy``), the runs, legal holds,
the inactive accounts' deletion notices."""

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils import timezone

from audit.services import audit_log_record
from jobs.admin import ReadOnlyAdmin
from retention.models import (
    AccountDeletionNotice,
    ArchiveManifest,
    DataStatistic,
    LegalHold,
    RetentionPolicyPage,
    RetentionRun,
)
from retention.policy import POLICIES, TABLE_HEADER, policy_table_rows


@admin.register(RetentionPolicyPage)
class RetentionPolicyAdmin(ReadOnlyAdmin):
    """The policy table, with the rule each cleanup applies and the models it governs."""

    def changelist_view(self, request, extra_context=None):
        if not self.has_view_permission(request):
            raise PermissionDenied
        rows = [(*row, p.rule, ", ".join(p.models) or "—")
                for row, p in zip(policy_table_rows(), POLICIES, strict=True)]
        context = {**self.admin_site.each_context(request), "title": "Retention policy",
                   "header": (*TABLE_HEADER, "Rule", "Models"), "rows": rows,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/retention/policy.html", context)


@admin.register(RetentionRun)
class RetentionRunAdmin(admin.ModelAdmin):
    list_display = ("cleanup", "dry_run", "status", "outcome", "cutoff", "started_at",
                    "finished_at")
    list_filter = ("policy", "cleanup", "status", "dry_run")
    # Not the position: while a run over files goes, it holds a key (which may name a user).
    exclude = ("position",)
    readonly_fields = [f.name for f in RetentionRun._meta.fields if f.name != "position"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Outcome")
    def outcome(self, run: RetentionRun) -> str:
        """The run's counts that are outcomes (statistics have a page of their own)."""
        parts = [f"{key.replace('_', ' ')} {value:,}" for key, value in run.counts.items()
                 if "." not in key and value]
        return " · ".join(parts) or ("refused: " + run.reason if run.reason else "nothing")


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    """Staff place a hold (on a user, or one record) and release it; both are audited."""

    list_display = ("__str__", "reason", "created_by", "created_at", "released_at")
    list_filter = ("released_at",)
    raw_id_fields = ("user",)
    fields = ("user", "resource_type", "resource_id", "reason")
    actions = ("release",)

    def has_delete_permission(self, request, obj=None):
        return False  # released, never deleted: the record of the hold stays

    def save_model(self, request, obj, form, change):
        if obj.created_by_id is None:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)
        audit_log_record(action="retention.hold_placed", resource=obj, actor=request.user,
                         is_critical=True)

    @admin.action(description="Release the hold")
    def release(self, request, queryset):
        for hold in queryset.filter(released_at__isnull=True):
            LegalHold.objects.filter(pk=hold.pk).update(released_at=timezone.now())
            audit_log_record(action="retention.hold_released", resource=hold,
                             actor=request.user, is_critical=True)


@admin.register(ArchiveManifest)
class ArchiveManifestAdmin(ReadOnlyAdmin):
    """Cold-storage archives: what each holds (counts, ids, SHA-256) and its last check."""

    list_display = ("id", "model_label", "rows", "first_id", "last_id", "size", "status",
                    "problem", "created_at", "checked_at")
    list_filter = ("status", "policy", "model_label")
    readonly_fields = [f.name for f in ArchiveManifest._meta.fields]


@admin.register(DataStatistic)
class DataStatisticAdmin(ReadOnlyAdmin):
    list_display = ("name", "value", "measured_at")
    search_fields = ("name",)


@admin.register(AccountDeletionNotice)
class AccountDeletionNoticeAdmin(ReadOnlyAdmin):
    """The inactive-accounts workflow for staff: every notice and what became of it, and
    (above the list) what a run would do now. Read only: a legal hold keeps an account."""

    list_display = ("id", "user", "status", "notified_at", "delete_after", "email_status",
                    "cancel_reason", "cancelled_at", "deleted_at")
    list_filter = ("status", "cancel_reason", "email_status", "notified_at")
    search_fields = ("=user__id",)
    date_hierarchy = "notified_at"
    list_select_related = ("user",)
    readonly_fields = [f.name for f in AccountDeletionNotice._meta.fields]
    change_list_template = "admin/retention/accountdeletionnotice/change_list.html"

    def has_delete_permission(self, request, obj=None):
        return False  # the record that the user was told stays

    def changelist_view(self, request, extra_context=None):
        from retention.accounts import outcome_counts

        counts = [(key.replace("_", " "), value) for key, value in outcome_counts().items()]
        return super().changelist_view(request, {**(extra_context or {}),
                                                 "inactive_account_counts": counts})
