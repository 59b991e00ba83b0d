"""Payment writes, by sub-domain: ``events`` (store and dispatch Stripe events),
``intents`` (payment state), ``retention`` (the manual end-of-retention removal)."""

from payments.services.retention import allow_payment_delete

__all__ = ["allow_payment_delete"]
