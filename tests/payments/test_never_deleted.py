"""Payment records are never deleted by an automatic path: the table itself refuses."""

import pytest
from django.db import IntegrityError, InternalError, transaction

from marketplace.models import Order, User
from payments.models import Payment
from payments.services import allow_payment_delete


def payment() -> Payment:
    client = User.objects.create_user("payer@example.test")
    order = Order.objects.create(client=client, title="Deck", province="ON",
                                 subtotal_cents=10_000, tax_cents=1_300, total_cents=11_300)
    return Payment.objects.create(order=order, payer=client, amount_cents=11_300,
                                  tax_cents=1_300, stripe_payment_intent_id="pi_1")


@pytest.mark.django_db
def test_deleting_a_payment_is_refused_by_the_database():
    record = payment()
    with pytest.raises((IntegrityError, InternalError), match="never deleted"), \
            transaction.atomic():
        Payment.objects.filter(pk=record.pk).delete()
    assert Payment.objects.filter(pk=record.pk).exists()


@pytest.mark.django_db
def test_deleting_the_payer_or_the_order_is_refused_too():
    from django.db.models import ProtectedError

    record = payment()
    with pytest.raises(ProtectedError):
        record.payer.delete()
    with pytest.raises(ProtectedError):
        record.order.delete()


@pytest.mark.django_db(transaction=True)
def test_only_the_manual_removal_may_delete():
    record = payment()
    with pytest.raises(RuntimeError):
        allow_payment_delete()  # outside a transaction: refused
    with transaction.atomic():
        allow_payment_delete()
        Payment.objects.filter(pk=record.pk).delete()
    assert not Payment.objects.exists()
    # the permission ended with its transaction
    again = Payment.objects.create(order=record.order, payer=record.payer, amount_cents=1,
                                   stripe_payment_intent_id="pi_2")
    with pytest.raises((IntegrityError, InternalError), match="never deleted"):
        again.delete()
