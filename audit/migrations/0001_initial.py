# The AuditLog model moves from marketplace to audit with its table and rows: this
# migration only tells Django's state that audit owns the existing table
# (marketplace_auditlog, created by marketplace 0001); 0002 renames it.

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("marketplace", "0002_user_email_verified_at"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditLog",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True,
                                                   serialize=False, verbose_name="ID")),
                        ("action", models.CharField(db_index=True, max_length=100)),
                        ("resource_type", models.CharField(
                            help_text="The model's app_label.model_name, e.g. "
                                      "marketplace.user.", max_length=100)),
                        ("resource_id", models.CharField(blank=True, max_length=100)),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("is_critical", models.BooleanField(default=False)),
                        ("created_at", models.DateTimeField(
                            db_index=True, default=django.utils.timezone.now)),
                        ("actor", models.ForeignKey(
                            blank=True, null=True,
                            on_delete=django.db.models.deletion.SET_NULL,
                            related_name="audit_entries", to=settings.AUTH_USER_MODEL)),
                    ],
                    options={"ordering": ["-created_at"], "db_table": "marketplace_auditlog"},
                ),
            ],
            database_operations=[],
        ),
    ]
