from django.contrib import admin

from audit.models import AuditLog


@admin.register(AuditLog)
class AuditLogAdmin(admin.ModelAdmin):
    list_display = ("created_at", "action", "resource_type", "resource_id", "actor",
                    "is_critical")
    list_filter = ("is_critical", "resource_type", "action")
    search_fields = ("action", "resource_id")
    raw_id_fields = ("actor",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # entries are written by the services that act

    def has_change_permission(self, request, obj=None):
        return False  # the trail is append-only

    def has_delete_permission(self, request, obj=None):
        return False  # only the retention policy removes entries
