"""Contractor subscriptions: a local mirror of Stripe Billing subscriptions, and our own
state around them (the features they give, dunning, the renewal reminder).

A Stripe subscription belongs to the user named by ``metadata.user_id`` on the
subscription (our checkout sets it when it creates the subscription); one without it, or
naming no user of ours, is not mirrored. What the subscription *gives* ("features") is
one thing, kept simple on purpose: the ``pro`` badge in the contractor's
``ContractorProfile.badges`` (shown on the profile; search ranks Pro profiles first). A
lapsed subscription downgrades the profile to a free listing; it never hides it
(``is_visible`` belongs to the contractor and to retention, not to billing).

Stripe's fields (``status``, ``cancel_at_period_end``, ``current_period_end`` ...) are
applied only from an event at least as new as the last one applied
(``last_event_created``), so an event delivered late never rolls the mirror back. Our own
fields move under the row's lock (``payments.services.subscriptions``).
"""

from django.conf import settings
from django.db import models
from django.utils import timezone

#: The badge a subscription's features put on the contractor's profile.
PRO_BADGE = "pro"


class SubscriptionStatus(models.TextChoices):
    """Stripe's subscription statuses, as Stripe names them."""

    TRIALING = "trialing", "Trialing"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due (renewal failed, in dunning)"
    UNPAID = "unpaid", "Unpaid (Stripe gave up retrying)"
    CANCELED = "canceled", "Canceled"
    INCOMPLETE = "incomplete", "Incomplete (first payment not done)"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete, expired"
    PAUSED = "paused", "Paused (trial ended without a payment method)"


class Subscription(models.Model):
    """One Stripe subscription of a contractor, mirrored from its events."""

    # --- Stripe's, from the subscription object ---
    stripe_subscription_id = models.CharField(max_length=255, unique=True)
    stripe_customer_id = models.CharField(max_length=255, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="subscriptions")
    price_id = models.CharField(max_length=255, blank=True,
                                help_text="The Stripe price of its (first) item: the plan.")
    amount_cents = models.PositiveBigIntegerField(
        default=0, help_text="The plan's price per period (unit amount × quantity).")
    currency = models.CharField(max_length=3, default="CAD")
    status = models.CharField(max_length=20, choices=SubscriptionStatus.choices,
                              db_index=True)
    cancel_at_period_end = models.BooleanField(default=False)
    current_period_end = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True,
                                       help_text="When it was canceled, as Stripe says.")
    # Stripe's ``created`` of the last event applied: an older one changes nothing.
    last_event_created = models.DateTimeField(null=True, blank=True)

    # --- Ours ---
    features_active = models.BooleanField(default=False)
    # Canceled in good standing: the features stay until then (the end of the paid period).
    access_until = models.DateTimeField(null=True, blank=True)
    # Dunning: since the first failed renewal of the current episode; cleared when paid.
    past_due_since = models.DateTimeField(null=True, blank=True)
    grace_until = models.DateTimeField(null=True, blank=True)
    dunning_step = models.PositiveSmallIntegerField(
        default=0, help_text="Dunning emails sent in the current episode.")
    amount_due_cents = models.PositiveBigIntegerField(
        default=0, help_text="The failed invoice's amount due (for the dunning emails).")
    suspended_at = models.DateTimeField(null=True, blank=True)
    # Features revoked because the subscription ended (the cancellation email went out).
    ended_at = models.DateTimeField(null=True, blank=True)
    # The renewal the reminder email was sent for: one reminder per period.
    reminded_for_period_end = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["current_period_end"], name="subscription_period_end"),
            models.Index(fields=["grace_until"], name="subscription_in_dunning",
                         condition=models.Q(past_due_since__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"Subscription #{self.pk} ({self.status})"
