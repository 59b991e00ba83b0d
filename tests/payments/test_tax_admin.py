"""The tax-rate admin: staff add a future rate; a rate in effect is locked."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditLog
from payments.models import TaxRate


def rate(days_from_today: int) -> TaxRate:
    return TaxRate.objects.create(
        province="ON", tax_type="HST", rate_percent=Decimal("12"), source="test",
        effective_from=timezone.localdate() + timedelta(days=days_from_today))


@pytest.mark.django_db
def test_staff_add_a_future_rate_and_it_is_audited(staff_client):
    day = timezone.localdate() + timedelta(days=30)
    response = staff_client.post(reverse("admin:payments_taxrate_add"), {
        "province": "NS", "tax_type": "HST", "rate_percent": "13",
        "effective_from": day.isoformat(), "source": "Budget act, s. 1"})
    assert response.status_code == 302
    added = TaxRate.objects.get(province="NS", effective_from=day)
    assert added.rate_percent == Decimal("13")
    entry = AuditLog.objects.get(action="payments.tax_rate_added")
    assert (entry.resource_id, entry.is_critical) == (str(added.pk), True)
    assert entry.metadata == {"province": "NS", "tax_type": "HST", "rate_percent": "13",
                              "effective_from": day.isoformat()}


@pytest.mark.django_db
@pytest.mark.parametrize("days", [0, -1])
def test_a_rate_from_today_or_earlier_is_refused(staff_client, days):
    day = timezone.localdate() + timedelta(days=days)
    response = staff_client.post(reverse("admin:payments_taxrate_add"), {
        "province": "NS", "tax_type": "HST", "rate_percent": "13",
        "effective_from": day.isoformat(), "source": "late"})
    assert response.status_code == 200
    assert "A new rate takes effect on a future date." in response.content.decode()
    assert not TaxRate.objects.filter(province="NS", effective_from=day).exists()


@pytest.mark.django_db
def test_a_rate_in_effect_cannot_be_changed_or_deleted(staff_client):
    in_effect = rate(0)
    change = reverse("admin:payments_taxrate_change", args=[in_effect.pk])
    assert staff_client.post(change, {
        "province": "ON", "tax_type": "HST", "rate_percent": "11",
        "effective_from": in_effect.effective_from.isoformat(), "source": "x"}
    ).status_code == 403
    delete = reverse("admin:payments_taxrate_delete", args=[in_effect.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    in_effect.refresh_from_db()
    assert in_effect.rate_percent == Decimal("12")


@pytest.mark.django_db
def test_a_future_rate_can_be_removed_until_its_date(staff_client):
    future = rate(1)
    delete = reverse("admin:payments_taxrate_delete", args=[future.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not TaxRate.objects.filter(pk=future.pk).exists()
    entry = AuditLog.objects.get(action="payments.tax_rate_deleted")
    assert entry.resource_id == str(future.pk)
