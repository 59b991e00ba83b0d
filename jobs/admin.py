"""Admin of the jobs app.

Each model's admin is its own section; add new ones below.
"""

import json
from datetime import timedelta

from cryptography.fernet import InvalidToken
from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html

from jobs import selectors, services
from jobs.models import FailedJob

# --- Failed jobs ------------------------------------------------------------------------


class FailedJobAgeFilter(admin.SimpleListFilter):
    """How long ago the job last failed."""

    title = "age"
    parameter_name = "age"
    _BANDS = {
        "1h": ("Last hour", timedelta(hours=1), None),
        "24h": ("Last 24 hours", timedelta(days=1), None),
        "7d": ("Last 7 days", timedelta(days=7), None),
        "older": ("Older than 7 days", None, timedelta(days=7)),
    }

    def lookups(self, request, model_admin):
        return [(value, label) for value, (label, _, _) in self._BANDS.items()]

    def queryset(self, request, queryset):
        band = self._BANDS.get(self.value() or "")
        if band is None:
            return queryset
        _, newer_than, older_than = band
        now = timezone.now()
        if newer_than is not None:
            return queryset.filter(last_failed_at__gte=now - newer_than)
        return queryset.filter(last_failed_at__lt=now - older_than)


@admin.register(FailedJob)
class FailedJobAdmin(admin.ModelAdmin):
    list_display = ("actor_display", "queue_name", "status", "exception_type", "attempts",
                    "first_failed_at", "last_failed_at", "message_id")
    list_filter = ("queue_name", "actor_name", "status", FailedJobAgeFilter)
    search_fields = ("actor_name", "message_id", "exception_type", "exception_message",
                     "retry_message_id")
    date_hierarchy = "last_failed_at"
    actions = ("retry_selected", "discard_selected")
    # Everything is read-only: a failed job is a record; staff act on it through actions.
    fields = ("message_id", "actor_name", "queue_name", "status", "schedule_id",
              "arguments_redacted", "exception_type", "exception_message", "traceback_display",
              "attempts", "first_failed_at", "last_failed_at", "retried_at", "retried_by",
              "retry_message_id", "discarded_at", "discarded_by")
    readonly_fields = fields

    @admin.display(description="actor", ordering="actor_name")
    def actor_display(self, obj: FailedJob) -> str:
        return obj.actor_name or "(unknown: undecodable message)"

    @admin.display(description="arguments (redacted)")
    def arguments_redacted(self, obj: FailedJob) -> str:
        try:
            shape = selectors.failed_job_arguments_redacted(failed_job=obj)
        except InvalidToken:
            return "(encrypted with a key that is no longer configured)"
        return json.dumps(shape) if shape else "(none stored)"

    @admin.display(description="traceback")
    def traceback_display(self, obj: FailedJob) -> str:
        return format_html("<pre style='white-space: pre-wrap'>{}</pre>", obj.traceback)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Retry selected failed jobs", permissions=["change"])
    def retry_selected(self, request, queryset):
        result = services.failed_jobs_retry(failed_jobs=queryset, user=request.user)
        if result.retried:
            self.message_user(request, f"Re-enqueued {len(result.retried)} job(s).",
                              messages.SUCCESS)
        for job, reason in result.skipped:
            self.message_user(request, f"Not retried: {job} ({reason}).", messages.WARNING)

    @admin.action(description="Discard selected failed jobs", permissions=["change"])
    def discard_selected(self, request, queryset):
        count = services.failed_jobs_discard(failed_jobs=queryset, user=request.user)
        skipped = queryset.count() - count
        self.message_user(request, f"Discarded {count} job(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request, f"{skipped} job(s) were not in the failed state and were left as "
                "they are.", messages.WARNING,
            )


# --- Schedules and operations reports (jobs/scheduling/admin.py) -------------------------
import jobs.scheduling.admin  # noqa: E402,F401
