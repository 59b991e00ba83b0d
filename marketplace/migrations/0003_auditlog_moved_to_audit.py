# AuditLog now belongs to the audit app (audit 0001 took over its table): drop it from
# marketplace's state only. The table and its rows stay.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("marketplace", "0002_user_email_verified_at"),
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="AuditLog")],
            database_operations=[],
        ),
    ]
