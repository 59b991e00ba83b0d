"""``manage.py stripe_event TYPE --order N``: post a Stripe event, signed with the
configured webhook secret, to a running Jobsite — what Stripe's own ``stripe trigger``
does against a live account, for development and ``make run``."""

import json
import secrets
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from marketplace.models import Order
from payments.stripe_api import signature_header

TYPES = ("payment_intent.created", "payment_intent.succeeded",
         "payment_intent.payment_failed", "payment_intent.canceled", "charge.refunded",
         "charge.dispute.created", "charge.dispute.closed")
#: A dispute's evidence is due this long after it opens (as Stripe's usually is).
EVIDENCE_DAYS = 7


class Command(BaseCommand):
    help = "Post a signed Stripe event for an order to the webhook of a running Jobsite."

    def add_arguments(self, parser):
        parser.add_argument("type", choices=TYPES)
        parser.add_argument("--order", type=int, required=True, help="the order's id")
        parser.add_argument("--intent", help="PaymentIntent id (default: pi_dev_<order>)")
        parser.add_argument("--refund-cents", type=int,
                            help="charge.refunded: total refunded (default: all)")
        parser.add_argument("--outcome", choices=("won", "lost"), default="won",
                            help="charge.dispute.closed: how it closed (default: won)")
        parser.add_argument("--url", default="http://127.0.0.1:8000/webhooks/stripe/")
        parser.add_argument("--times", type=int, default=1,
                            help="deliver the same event this many times (replays)")

    def handle(self, *args, type, order, intent, refund_cents, outcome, url, times,
               **options):
        if not settings.STRIPE_WEBHOOK_SECRET:
            raise CommandError("STRIPE_WEBHOOK_SECRET is not set.")
        try:
            found = Order.objects.get(pk=order)
        except Order.DoesNotExist:
            raise CommandError(f"No order #{order}.") from None
        intent = intent or f"pi_dev_{found.pk}"
        now = int(time.time())
        status = {"payment_intent.succeeded": "succeeded",
                  "payment_intent.canceled": "canceled",
                  "payment_intent.created": "requires_payment_method",
                  "payment_intent.payment_failed": "requires_payment_method"}.get(type)
        metadata = {"order_id": str(found.pk), "payer_id": str(found.client_id)}
        if type.startswith("charge.dispute."):
            obj = {"id": f"dp_dev_{found.pk}", "object": "dispute", "payment_intent": intent,
                   "charge": f"ch_dev_{found.pk}", "amount": found.total_cents,
                   "currency": found.currency.lower(), "reason": "product_not_received",
                   "status": outcome if type.endswith("closed") else "needs_response",
                   "created": now, "evidence_details": {
                       "due_by": now + EVIDENCE_DAYS * 86_400, "has_evidence": False}}
        elif type == "charge.refunded":
            obj = {"id": f"ch_dev_{found.pk}", "object": "charge", "payment_intent": intent,
                   "amount": found.total_cents, "metadata": metadata,
                   "amount_refunded": found.total_cents if refund_cents is None
                   else refund_cents}
        else:
            obj = {"id": intent, "object": "payment_intent", "amount": found.total_cents,
                   "amount_received": found.total_cents if status == "succeeded" else 0,
                   "currency": found.currency.lower(), "status": status, "created": now,
                   "metadata": metadata, "latest_charge": f"ch_dev_{found.pk}"}
        body = json.dumps({"id": f"evt_dev_{secrets.token_hex(8)}", "object": "event",
                           "created": now, "livemode": False, "type": type,
                           "api_version": "2025-09-30.clover", "data": {"object": obj}})
        for _ in range(times):
            header = signature_header(body)
            request = urllib.request.Request(url, data=body.encode(), method="POST", headers={
                "Content-Type": "application/json", "Stripe-Signature": header})
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    self.stdout.write(f"{response.status} {response.read().decode()}")
            except urllib.error.HTTPError as exc:
                self.stdout.write(f"{exc.code} {exc.read().decode()}")
            except urllib.error.URLError as exc:
                raise CommandError(f"Could not reach {url}: {exc.reason}") from None
