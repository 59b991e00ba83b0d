"""Payment records are never deleted by an automatic path: the table itself refuses."""

from datetime import timedelta

import pytest
from django.db import IntegrityError, InternalError, connection, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from marketplace.models import Order, User
from payments.models import Payment
from payments.services import allow_payment_delete

REFUSED = (IntegrityError, InternalError)


def payment(*, age_days: float = 0, intent: str = "pi_1") -> Payment:
    client = User.objects.create_user(f"payer-{intent}@example.test")
    order = Order.objects.create(client=client, title="Deck", province="ON",
                                 subtotal_cents=10_000, tax_cents=1_300, total_cents=11_300)
    return Payment.objects.create(order=order, payer=client, amount_cents=11_300,
                                  tax_cents=1_300, stripe_payment_intent_id=intent,
                                  created_at=timezone.now() - timedelta(days=age_days))


@pytest.mark.django_db(transaction=True)
def test_a_recent_payment_cannot_be_deleted_whoever_connects():
    record = payment()
    with pytest.raises(REFUSED, match="kept 7 years"), transaction.atomic():
        allow_payment_delete()  # not even the manual removal
        Payment.objects.filter(pk=record.pk).delete()
    with pytest.raises(REFUSED, match="kept 7 years"), connection.cursor() as cursor:
        cursor.execute("DELETE FROM payments_payment")  # raw SQL, as any client would
    assert Payment.objects.filter(pk=record.pk).exists()


@pytest.mark.django_db
def test_deleting_the_payer_or_the_order_is_refused_too():
    record = payment()
    with pytest.raises(ProtectedError):
        record.payer.delete()
    with pytest.raises(ProtectedError):
        record.order.delete()


@pytest.mark.django_db(transaction=True)
def test_a_payment_past_7_years_goes_only_by_the_manual_removal():
    old = payment(age_days=7 * 366, intent="pi_old")
    with pytest.raises(REFUSED, match="never deleted automatically"):
        Payment.objects.filter(pk=old.pk).delete()
    with pytest.raises(RuntimeError):
        allow_payment_delete()  # outside a transaction: refused
    with transaction.atomic():
        allow_payment_delete()
        Payment.objects.filter(pk=old.pk).delete()
    assert not Payment.objects.filter(pk=old.pk).exists()
    # The permission ended with its transaction.
    again = payment(age_days=7 * 366, intent="pi_again")
    with pytest.raises(REFUSED, match="never deleted automatically"):
        again.delete()
