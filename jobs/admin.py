"""Admin of the jobs app: failed jobs, schedules, operations reports.

Staff see what they act on. The internals of the libraries underneath — django-apscheduler's
job store and execution rows (the Schedules list shows next and last runs) and
django-dramatiq's task rows (Jobsite keeps its AdminMiddleware off, so that list is
always empty) — are taken out of the admin.
"""

import json
from datetime import timedelta

from cryptography.fernet import InvalidToken
from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.html import format_html
from django_apscheduler.models import DjangoJob, DjangoJobExecution
from django_dramatiq.models import Task

from jobs import selectors, services
from jobs.models import BrokerEpoch, FailedJob, OperationsReport, Schedule
from jobs.scheduling import selectors as schedule_selectors
from jobs.scheduling import services as schedule_services
from jobs.scheduling.triggers import cron_describe, cron_validate, time_zone_validate

for internal in (DjangoJob, DjangoJobExecution, Task):
    if admin.site.is_registered(internal):
        admin.site.unregister(internal)


class ReadOnlyAdmin(admin.ModelAdmin):
    """Records a job or service writes: staff view them, never add, change or delete
    them here (any app's admin may build on it)."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
            self.message_user(request, f"Retried {len(result.retried)} job(s): a worker does "
                                       "their work again.", messages.SUCCESS)
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


# --- Schedules ------------------------------------------------------------------------

class ScheduleForm(forms.ModelForm):
    """Validates everything the scheduler would otherwise trip over: the actor exists,
    the kwargs bind to its signature and are JSON, the cron has 5 valid fields, the zone
    is IANA."""

    actor_name = forms.ChoiceField(label="Actor", choices=())

    class Meta:
        model = Schedule
        fields = ["name", "description", "actor_name", "kwargs", "cron", "time_zone",
                  "enabled", "misfire_grace_seconds"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        names = schedule_selectors.registered_actor_names()
        current = self.initial.get("actor_name")
        choices = [(name, name) for name in names]
        if current and current not in names:  # keep a row with a removed actor editable
            choices.insert(0, (current, f"{current} (not registered)"))
        self.fields["actor_name"].choices = [("", "---------")] + choices
        if self.instance.pk and self.instance.cron:
            self.fields["cron"].help_text = (
                f"{self.fields['cron'].help_text} Now: {cron_describe(self.instance.cron)}.")

    def clean_actor_name(self) -> str:
        name = self.cleaned_data["actor_name"]
        if schedule_selectors.registered_actor(name) is None:
            raise ValidationError("%(name)s is not a registered actor.", params={"name": name})
        return name

    def clean_cron(self) -> str:
        return cron_validate(self.cleaned_data["cron"])

    def clean_time_zone(self) -> str:
        name = self.cleaned_data["time_zone"].strip()
        time_zone_validate(name)
        return name

    def clean_misfire_grace_seconds(self) -> int:
        value = self.cleaned_data["misfire_grace_seconds"]
        if value < 1:
            raise ValidationError("The misfire grace is at least 1 second.")
        return value

    def clean(self):
        cleaned = super().clean()
        kwargs = cleaned.get("kwargs")
        if kwargs is None:
            kwargs = {}
            cleaned["kwargs"] = kwargs
        if not isinstance(kwargs, dict):
            self.add_error("kwargs", "Keyword arguments are a JSON object, e.g. {\"days\": 7}.")
            return cleaned
        actor = schedule_selectors.registered_actor(cleaned.get("actor_name") or "")
        if actor is not None:
            error = schedule_selectors.actor_kwargs_error(actor, kwargs)
            if error:
                self.add_error("kwargs", f"These arguments do not fit the actor: {error}.")
        try:
            json.dumps(kwargs)
        except (TypeError, ValueError):
            self.add_error("kwargs", "Keyword arguments must be plain JSON values.")
        return cleaned


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    # Six columns: the list fits a 1366 px screen (checked in headless Chromium).
    list_display = ["name", "actor_name", "when", "enabled", "next_run_local", "last_run"]
    list_filter = ["enabled", "last_outcome", "time_zone", "is_default"]
    search_fields = ["name", "actor_name", "description"]
    actions = ["run_now", "enable", "disable"]
    readonly_fields = ["cron_description", "next_run", "scheduler_next_run", "last_run_at",
                       "last_outcome", "last_outcome_at", "last_error", "last_message_id",
                       "is_default", "is_customized", "created_at", "updated_at"]
    fieldsets = [
        (None, {"fields": ["name", "description", "actor_name", "kwargs", "enabled"]}),
        ("When", {"fields": ["cron", "cron_description", "time_zone", "misfire_grace_seconds",
                             "next_run", "scheduler_next_run"]}),
        ("Last run", {"fields": ["last_run_at", "last_outcome", "last_outcome_at",
                                 "last_error", "last_message_id"]}),
        ("Origin", {"fields": ["is_default", "is_customized", "created_at", "updated_at"]}),
    ]

    @admin.display(description="runs")
    def cron_description(self, obj: Schedule) -> str:
        return obj.cron_description

    @admin.display(description="when", ordering="cron")
    def when(self, obj: Schedule):
        return format_html("<code>{}</code> {}<br><small>{}</small>", obj.cron, obj.time_zone,
                           obj.cron_description)

    @admin.display(description="next run")
    def next_run_local(self, obj: Schedule):
        """In the schedule's own zone: the time its cron names."""
        when = schedule_selectors.schedule_next_run_at(obj)
        return "—" if when is None else f"{when:%a %Y-%m-%d %H:%M %Z}"

    @admin.display(description="last run", ordering="last_run_at")
    def last_run(self, obj: Schedule):
        if obj.last_run_at is None:
            return "—"
        outcome = obj.get_last_outcome_display() or "—"
        return format_html("{}<br><small>{}</small>", outcome,
                           f"{timezone.localtime(obj.last_run_at):%Y-%m-%d %H:%M %Z}")

    @admin.display(description="next run")
    def next_run(self, obj: Schedule):
        when = schedule_selectors.schedule_next_run_at(obj)
        if when is None:
            return "—"
        return f"{when:%Y-%m-%d %H:%M %Z} ({timezone.localtime(when):%Y-%m-%d %H:%M %Z})"

    @admin.display(description="next run (running scheduler)")
    def scheduler_next_run(self, obj: Schedule):
        return schedule_selectors.scheduler_job_next_run_at(obj) if obj.pk else None

    def save_model(self, request, obj, form, change):
        schedule_services.schedule_save(schedule=obj, changed_fields=list(form.changed_data),
                               user=request.user)

    @admin.action(description="Run now (enqueue the actor; a worker runs it)")
    def run_now(self, request, queryset):
        for schedule in queryset:
            try:
                schedule_services.schedule_run_now(schedule=schedule, user=request.user)
            except schedule_services.ScheduleActorMissing:
                self.message_user(request, f"{schedule}: actor {schedule.actor_name} is not "
                                           "registered.", messages.ERROR)
            else:
                self.message_user(request, f"{schedule}: enqueued.", messages.SUCCESS)

    @admin.action(description="Enable")
    def enable(self, request, queryset):
        self._set_enabled(request, queryset, True)

    @admin.action(description="Disable")
    def disable(self, request, queryset):
        self._set_enabled(request, queryset, False)

    def _set_enabled(self, request, queryset, enabled: bool):
        for schedule in queryset:
            if schedule.enabled != enabled:
                schedule.enabled = enabled
                schedule_services.schedule_save(schedule=schedule, changed_fields=["enabled"],
                                       user=request.user)


# --- Operations reports ---------------------------------------------------------------


@admin.register(OperationsReport)
class OperationsReportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "summary", "finding_count", "emailed_to"]
    list_filter = ["kind"]
    readonly_fields = ["kind", "created_at", "period_start", "period_end", "summary",
                       "emailed_to", "emailed_at", "findings_pretty"]
    exclude = ["findings"]

    @admin.display(description="findings")
    def findings_pretty(self, obj: OperationsReport):
        return format_html("<pre>{}</pre>", json.dumps(obj.findings, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


# --- Redis epochs ---------------------------------------------------------------------


@admin.register(BrokerEpoch)
class BrokerEpochAdmin(ReadOnlyAdmin):
    """When Redis lost its data, and what was re-driven (README "Reliability")."""

    list_display = ["created_at", "data_lost_at", "recovered_at", "redriven"]
    list_filter = [("data_lost_at", admin.EmptyFieldListFilter)]
    fields = ["created_at", "data_lost_at", "recovered_at", "redriven"]
    readonly_fields = fields
