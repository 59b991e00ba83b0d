"""Payment records. They are never deleted by any automatic path (CRA: 7 years): the
table refuses DELETE of a row younger than 7 years whoever connects, and of an older one
unless the transaction said, with :func:`payments.services.allow_payment_delete`, that it
is the manual end-of-retention removal (a trigger, migration 0001)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class PaymentStatus(models.TextChoices):
    # Only moves forward (payments.services.intents.STATUS_RANK): a failed attempt may
    # still succeed (the client retries the card), nothing goes back to pending, a
    # succeeded payment is only refunded further.
    PENDING = "pending", "Pending"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIALLY_REFUNDED = "partially_refunded", "Partially refunded"
    REFUNDED = "refunded", "Refunded"


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
    fee_cents = models.PositiveBigIntegerField(default=0, help_text="Stripe's fee.")
    currency = models.CharField(max_length=3, default="CAD")
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    is_disputed = models.BooleanField(default=False)
    # The payer's billing name, email and address as Stripe reported them: personal data,
    # encrypted with the project's keys (jobs.encryption), shown redacted in admin.
    billing_details = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    succeeded_at = models.DateTimeField(null=True, blank=True)
    # Set by manage.py archive_payments once the record is in cold storage (never deleted).
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Payment #{self.pk}"
