"""Disputes (chargebacks and inquiries) on a payment, mirrored from Stripe's ``charge.dispute.*``
events. State moves forward only (:data:`DISPUTE_STATUS_RANK`); a closed dispute is final.
Dispute rows are payment records (7 years): the same delete guard as ``payments_payment``.
"""

from django.db import models
from django.utils import timezone


class DisputeStatus(models.TextChoices):
    # Stripe's statuses. "warning_*" are inquiries (no funds withdrawn yet).
    WARNING_NEEDS_RESPONSE = "warning_needs_response", "Inquiry: needs response"
    WARNING_UNDER_REVIEW = "warning_under_review", "Inquiry: under review"
    NEEDS_RESPONSE = "needs_response", "Needs response"
    UNDER_REVIEW = "under_review", "Under review"
    WARNING_CLOSED = "warning_closed", "Inquiry closed"
    WON = "won", "Won"
    LOST = "lost", "Lost"
    PREVENTED = "prevented", "Prevented"


#: Open statuses rank below closed ones; a status only replaces one of a lower rank.
DISPUTE_STATUS_RANK = {
    DisputeStatus.WARNING_NEEDS_RESPONSE: 0, DisputeStatus.WARNING_UNDER_REVIEW: 1,
    DisputeStatus.NEEDS_RESPONSE: 2, DisputeStatus.UNDER_REVIEW: 3,
    DisputeStatus.WARNING_CLOSED: 10, DisputeStatus.WON: 10, DisputeStatus.LOST: 10,
    DisputeStatus.PREVENTED: 10,
}
CLOSED_STATUSES = frozenset(status for status, rank in DISPUTE_STATUS_RANK.items()
                            if rank >= 10)
OPEN_STATUSES = frozenset(DISPUTE_STATUS_RANK) - CLOSED_STATUSES


class DisputeOutcome(models.TextChoices):
    WON = "won", "Won (funds returned)"
    LOST = "lost", "Lost (funds kept by the cardholder)"
    CLOSED = "closed", "Closed without a chargeback (inquiry closed, prevented)"


class Dispute(models.Model):
    """One Stripe dispute on one of our payments."""

    stripe_dispute_id = models.CharField(max_length=255, unique=True)
    payment = models.ForeignKey("payments.Payment", on_delete=models.PROTECT,
                                related_name="disputes")
    stripe_charge_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=24, choices=DisputeStatus.choices)
    # Stripe's reason code ("fraudulent", "product_not_received"...), never free text.
    reason = models.CharField(max_length=40, blank=True)
    amount_cents = models.PositiveBigIntegerField()
    currency = models.CharField(max_length=3, default="CAD")
    evidence_due_by = models.DateTimeField(null=True, blank=True, db_index=True)
    opened_at = models.DateTimeField(help_text="When Stripe created the dispute.")
    closed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=8, choices=DisputeOutcome.choices, blank=True)
    # When staff and the contractor were told (each once: the notify job checks these),
    # and the notify job's message of each stage (jobs.stateful: re-driven if lost).
    opened_notified_at = models.DateTimeField(null=True, blank=True)
    closed_notified_at = models.DateTimeField(null=True, blank=True)
    opened_notify_message_id = models.CharField(max_length=36, blank=True, editable=False)
    closed_notify_message_id = models.CharField(max_length=36, blank=True, editable=False)
    # The delete guard keeps each dispute 7 years from here (payments.db_guard).
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["evidence_due_by", "pk"]

    def __str__(self) -> str:
        return f"Dispute #{self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES
