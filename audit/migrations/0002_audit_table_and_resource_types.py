# The audit trail's own table name, its content type (and so its permissions) moved to
# the audit app, and one resource_type vocabulary for every entry: the model's label.

from django.db import migrations

# resource_type values written before this migration → the model label they meant.
OLD_RESOURCE_TYPES = {
    "failed_job": "jobs.failedjob",
    "jobs.Schedule": "jobs.schedule",
    "user": "marketplace.user",
    "auth": "marketplace.user",
    "review": "marketplace.review",
    "suppression": "notifications.suppression",
    "demo": "marketplace.user",
}
# Going back, each label returns to the value the old code wrote for it.
NEW_TO_OLD = {
    "jobs.failedjob": "failed_job",
    "jobs.schedule": "jobs.Schedule",
    "marketplace.review": "review",
    "notifications.suppression": "suppression",
}


def forwards(apps, schema_editor):
    AuditLog = apps.get_model("audit", "AuditLog")
    for old, new in OLD_RESOURCE_TYPES.items():
        AuditLog.objects.filter(resource_type=old).update(resource_type=new)
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="audit", model="auditlog").exists():
        ContentType.objects.filter(app_label="marketplace", model="auditlog").update(
            app_label="audit")


def backwards(apps, schema_editor):
    AuditLog = apps.get_model("audit", "AuditLog")
    for new, old in NEW_TO_OLD.items():
        AuditLog.objects.filter(resource_type=new).update(resource_type=old)
    # A failed login named no user; every other user entry was about a user.
    AuditLog.objects.filter(resource_type="marketplace.user", action="auth.login_failed"
                            ).update(resource_type="auth")
    AuditLog.objects.filter(resource_type="marketplace.user", action="demo.seeded"
                            ).update(resource_type="demo")
    AuditLog.objects.filter(resource_type="marketplace.user").update(resource_type="user")
    ContentType = apps.get_model("contenttypes", "ContentType")
    if not ContentType.objects.filter(app_label="marketplace", model="auditlog").exists():
        ContentType.objects.filter(app_label="audit", model="auditlog").update(
            app_label="marketplace")


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0001_initial"),
        ("marketplace", "0003_auditlog_moved_to_audit"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.AlterModelTable(name="auditlog", table=None),
        migrations.RunPython(forwards, backwards),
    ]
