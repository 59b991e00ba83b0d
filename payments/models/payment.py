"""Payment records. They are never deleted by any automatic path (CRA: 7 years): the
table refuses DELETE (a trigger, migration 0001) unless a transaction has said, with
:func:`payments.services.allow_payment_delete`, that it is the manual end-of-retention
removal."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class PaymentStatus(models.TextChoices):
    # Only moves forward (the webhook handlers' rule): pending → a final state.
    PENDING = "pending", "Pending"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    REFUNDED = "refunded", "Refunded"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    DISPUTED = "disputed", "Disputed"


class Payment(models.Model):
    """A client's payment for an order, mirrored from its Stripe PaymentIntent."""

    order = models.ForeignKey("marketplace.Order", on_delete=models.PROTECT,
                              related_name="payments")
    payer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                              related_name="payments")
    stripe_payment_intent_id = models.CharField(max_length=255, unique=True)
    status = models.CharField(max_length=20, choices=PaymentStatus.choices,
                              default=PaymentStatus.PENDING, db_index=True)
    amount_cents = models.PositiveBigIntegerField()
    tax_cents = models.PositiveBigIntegerField(default=0)
    refunded_cents = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="CAD")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Payment #{self.pk}"
