"""Admin for schedules (edited by staff; the scheduler picks edits up within seconds) and
the reports the operations jobs store."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from jobs.scheduling import selectors, services
from jobs.scheduling.models import OperationsReport, Schedule
from jobs.scheduling.triggers import cron_describe, cron_validate, time_zone_validate


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
        names = selectors.registered_actor_names()
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
        if selectors.registered_actor(name) is None:
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
        actor = selectors.registered_actor(cleaned.get("actor_name") or "")
        if actor is not None:
            error = selectors.actor_kwargs_error(actor, kwargs)
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
    list_display = ["name", "actor_name", "cron", "cron_description", "time_zone", "enabled",
                    "next_run", "last_run_at", "last_outcome"]
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

    @admin.display(description="next run")
    def next_run(self, obj: Schedule):
        when = selectors.schedule_next_run_at(obj)
        if when is None:
            return "—"
        return f"{when:%Y-%m-%d %H:%M %Z} ({timezone.localtime(when):%Y-%m-%d %H:%M %Z})"

    @admin.display(description="next run (running scheduler)")
    def scheduler_next_run(self, obj: Schedule):
        return selectors.scheduler_job_next_run_at(obj) if obj.pk else None

    def save_model(self, request, obj, form, change):
        services.schedule_save(schedule=obj, changed_fields=list(form.changed_data),
                               user=request.user)

    @admin.action(description="Run now (enqueue the actor; a worker runs it)")
    def run_now(self, request, queryset):
        for schedule in queryset:
            try:
                services.schedule_run_now(schedule=schedule, user=request.user)
            except services.ScheduleActorMissing:
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
                services.schedule_save(schedule=schedule, changed_fields=["enabled"],
                                       user=request.user)


@admin.register(OperationsReport)
class OperationsReportAdmin(admin.ModelAdmin):
    list_display = ["created_at", "kind", "summary", "finding_count", "emailed_to"]
    list_filter = ["kind"]
    readonly_fields = ["kind", "created_at", "period_start", "period_end", "summary",
                       "emailed_to", "findings_pretty"]
    exclude = ["findings"]

    @admin.display(description="findings")
    def findings_pretty(self, obj: OperationsReport):
        from django.utils.html import format_html

        return format_html("<pre>{}</pre>", json.dumps(obj.findings, indent=2))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
