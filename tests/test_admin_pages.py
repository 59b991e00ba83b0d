"""Every admin changelist and add page loads for staff; others are sent to login."""

import pytest
from django.contrib import admin
from django.urls import reverse

REGISTERED = sorted(
    (model._meta.app_label, model._meta.model_name) for model in admin.site._registry
)


@pytest.mark.django_db
@pytest.mark.parametrize(("app_label", "model_name"), REGISTERED)
def test_changelist_and_add_pages_load_for_staff(staff_client, app_label, model_name):
    changelist = reverse(f"admin:{app_label}_{model_name}_changelist")
    assert staff_client.get(changelist).status_code == 200
    model_admin = admin.site._registry[
        next(m for m in admin.site._registry
             if (m._meta.app_label, m._meta.model_name) == (app_label, model_name))
    ]
    add = reverse(f"admin:{app_label}_{model_name}_add")
    expected = 200 if model_admin.has_add_permission(_request_for(staff_client)) else 403
    assert staff_client.get(add).status_code == expected


def _request_for(client):
    from django.test import RequestFactory

    from marketplace.models import User

    request = RequestFactory().get("/")
    request.user = User.objects.get(email="staff@example.test")
    return request


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
