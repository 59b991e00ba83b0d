"""The audit trail's move from marketplace to its own app keeps every row: the database is
migrated back to before the move, given entries in the old vocabulary and a group allowed
to read them, and migrated forward again."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from audit.models import AuditLog

BEFORE_THE_MOVE = [("marketplace", "0002_user_email_verified_at"), ("audit", None)]

# (action, resource_type written by the old code, the label it becomes)
OLD_ENTRIES = [
    ("failed_job.retried", "failed_job", "jobs.failedjob"),
    ("schedule.run_now", "jobs.Schedule", "jobs.schedule"),
    ("auth.email_verified", "user", "marketplace.user"),
    ("auth.login_failed", "auth", "marketplace.user"),
    ("review.created", "review", "marketplace.review"),
    ("email.suppression_added", "suppression", "notifications.suppression"),
]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor


def latest() -> list[tuple[str, str]]:
    executor = MigrationExecutor(connection)
    return executor.loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_moving_the_audit_trail_keeps_its_rows_table_vocabulary_and_permissions(
        django_user_model):
    # Given the database as it was before the move, holding audit entries and a group
    # allowed to view them (through marketplace's content type)
    executor = migrate(BEFORE_THE_MOVE)
    old_apps = executor.loader.project_state(BEFORE_THE_MOVE[:1]).apps
    OldUser = old_apps.get_model("marketplace", "User")
    OldAuditLog = old_apps.get_model("marketplace", "AuditLog")
    staff = OldUser.objects.create(email="staff@example.test", password="!", is_staff=True)
    now = timezone.now()
    ids = [OldAuditLog.objects.create(action=action, resource_type=old, resource_id=str(n),
                                      actor_id=staff.pk, metadata={"n": n}, created_at=now).pk
           for n, (action, old, _) in enumerate(OLD_ENTRIES)]
    content_type = ContentType.objects.get(app_label="marketplace", model="auditlog")
    view = Permission.objects.get(content_type=content_type, codename="view_auditlog")
    auditors = Group.objects.create(name="auditors")
    auditors.permissions.add(view)

    try:
        # When the migrations run forward
        migrate(latest())

        # Then every row is there, in audit's own table, in the one vocabulary
        assert AuditLog._meta.db_table == "audit_auditlog"
        rows = {row.pk: row for row in AuditLog.objects.all()}
        assert sorted(rows) == sorted(ids)
        for pk, (action, _, label) in zip(ids, OLD_ENTRIES, strict=True):
            row = rows[pk]
            assert (row.action, row.resource_type, row.actor_id) == (action, label, staff.pk)
        with connection.cursor() as cursor:
            tables = connection.introspection.table_names(cursor)
        assert "audit_auditlog" in tables and "marketplace_auditlog" not in tables
        # and the group's permission moved with the content type: nothing to re-grant
        moved = ContentType.objects.get(app_label="audit", model="auditlog")
        assert moved.pk == content_type.pk
        assert not ContentType.objects.filter(app_label="marketplace", model="auditlog").exists()
        member = django_user_model.objects.create_user("auditor@example.test", "pw-x-12345",
                                                       is_staff=True)
        member.groups.add(auditors)
        assert member.has_perm("audit.view_auditlog")
    finally:
        migrate(latest())
