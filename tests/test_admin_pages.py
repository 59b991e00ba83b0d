"""The admin as each kind of user meets it. Expected outcomes are fixed per model and role
(not read back from the admin's own permission methods), so a permission granted by
mistake fails here."""

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse

# What a superuser gets: (changelist, add page). Read-only records refuse the add page.
SUPERUSER = {
    "analytics.dailystatistics": (200, 403),
    "analytics.monthlyreport": (200, 403),
    "audit.auditlog": (200, 403),
    "auth.group": (200, 200),
    "jobs.brokerepoch": (200, 403),
    "jobs.failedjob": (200, 403),
    "jobs.operationsreport": (200, 403),
    "jobs.schedule": (200, 200),
    "marketplace.chatmessage": (200, 200),
    "marketplace.city": (200, 200),
    "marketplace.clientrating": (200, 403),
    "marketplace.contractorprofile": (200, 200),
    "marketplace.order": (200, 200),
    "marketplace.ratingrun": (200, 403),
    "marketplace.refreshtoken": (200, 200),
    "marketplace.review": (200, 403),
    "marketplace.tradecategory": (200, 200),
    "marketplace.user": (200, 200),
    "marketplace.usersession": (200, 200),
    "notifications.device": (200, 403),
    "notifications.emaillog": (200, 403),
    "notifications.emailpreference": (200, 403),
    "notifications.notification": (200, 200),
    "notifications.pushcampaign": (200, 200),
    "notifications.pushlog": (200, 403),
    "notifications.pushpreference": (200, 403),
    "notifications.suppression": (200, 200),
    "payments.dispute": (200, 403),
    "payments.journalentry": (200, 403),
    "payments.payment": (200, 403),
    "payments.paymentarchive": (200, 403),
    "payments.receipt": (200, 403),
    "payments.stripeevent": (200, 403),
    "payments.subscription": (200, 403),
    "payments.taxrate": (200, 200),
    "retention.archivemanifest": (200, 403),
    "retention.datastatistic": (200, 403),
    "retention.accountdeletionnotice": (200, 403),
    "retention.legalhold": (200, 200),
    "retention.retentionpolicypage": (200, 403),
    "retention.retentionrun": (200, 403),
}
# Library internals staff do not edit: taken out of the admin (jobs/admin.py).
HIDDEN = ["django_apscheduler.djangojob", "django_apscheduler.djangojobexecution",
          "django_dramatiq.task"]


def urls(label: str) -> tuple[str, str]:
    app, model = label.split(".")
    return (reverse(f"admin:{app}_{model}_changelist"), reverse(f"admin:{app}_{model}_add"))


def test_the_admin_shows_exactly_these_models():
    registered = {model._meta.label_lower for model in admin.site._registry}
    assert registered == set(SUPERUSER)
    assert not registered & set(HIDDEN)


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(SUPERUSER))
def test_superuser_outcomes(staff_client, label):
    changelist, add = urls(label)
    assert (staff_client.get(changelist).status_code,
            staff_client.get(add).status_code) == SUPERUSER[label]


@pytest.mark.django_db
def test_audit_entries_cannot_be_deleted_even_by_a_superuser(staff_client):
    from audit.models import AuditLog
    from audit.services import audit_log_record

    entry = audit_log_record(action="test.entry", resource=AuditLog)
    response = staff_client.get(reverse("admin:audit_auditlog_delete", args=[entry.pk]))
    assert response.status_code == 403


@pytest.fixture
def viewer(client, django_user_model):
    """Support staff: may look at everything, change nothing."""
    user = django_user_model.objects.create_user("support@example.test", "pw-support-123",
                                                 is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.parametrize("label", sorted(SUPERUSER))
def test_view_only_staff_see_every_list_and_add_nothing(viewer, label):
    changelist, add = urls(label)
    assert (viewer.get(changelist).status_code, viewer.get(add).status_code) == (200, 403)


@pytest.mark.django_db
def test_staff_without_permissions_see_no_list(client, django_user_model):
    user = django_user_model.objects.create_user("newhire@example.test", "pw-newhire-123",
                                                 is_staff=True)
    client.force_login(user)
    for label in SUPERUSER:
        assert client.get(urls(label)[0]).status_code == 403, label


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/django_apscheduler/djangojob/",
                                  "/admin/django_apscheduler/djangojobexecution/",
                                  "/admin/django_dramatiq/task/"])
def test_library_internals_are_not_in_the_admin(staff_client, path):
    assert staff_client.get(path).status_code == 404


@pytest.mark.django_db
def test_non_staff_user_is_sent_to_login(client, django_user_model):
    user = django_user_model.objects.create_user("client@example.test", "pw-client-123")
    client.force_login(user)
    response = client.get(reverse("admin:marketplace_order_changelist"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.django_db
def test_anonymous_user_is_sent_to_login(client):
    response = client.get(reverse("admin:index"))
    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]
