"""The ``payments`` workload of ``benchjobs``: signed Stripe webhooks over HTTP, through
the real view on gunicorn, to processed payments.

Prepared: ``count`` payers (bench users, each with one push device, as the push workload
makes them), one order each (set-based SQL), and one distinct ``payment_intent.succeeded``
event per order, shaped as Stripe sends it (ids, amounts, metadata, ``latest_charge``,
payment method options: about 2.5 KB). Delivered: each event posted to
``/webhooks/stripe/`` of a gunicorn started as the Procfile starts it (gthread workers, so
the client's connections are kept alive), signed at send time with the run's webhook
secret (``payments.stripe_api.signature_header``: the library's), from :data:`CLIENT_CONNECTIONS`
keep-alive connections of this process. Processed: by the ``high`` worker group
(``stripe_event_process`` on the ``payments`` queue, the confirmation email on ``emails``)
and the ``push`` group (the confirmation push, to the OneSignal stand-in).

An event counts as done when its row is ``processed``, its payment ``succeeded``, and the
payer's confirmation email and push reached a final state; it succeeded when the email
and the push were sent. Payment records are never deleted (the table refuses it), so the
run's payments stay in the bench database with their orders and payers; its events,
emails, pushes and devices are deleted.
"""

from __future__ import annotations

import http.client
import json
import math
import secrets
import threading
import time
from collections import Counter
from typing import Any

from django.db import connection

#: Concurrent keep-alive connections the client posts on (gunicorn serves as many).
CLIENT_CONNECTIONS = 8
#: Threads per gunicorn worker process (the gthread worker: keep-alive connections).
WEB_THREADS = 4
WEBHOOK_PATH = "/webhooks/stripe/"
ORDER_SUBTOTAL_CENTS = 10_000
ORDER_TAX_CENTS = 1_300
#: Seconds between progress checks: each is three counts over the run's rows.
POLL_S = 0.25


def webhook_secret() -> str:
    """A fresh signing secret for one run (gunicorn gets it as ``STRIPE_WEBHOOK_SECRET``)."""
    return f"whsec_bench_{secrets.token_hex(16)}"


def _prefix(run_id: str) -> str:
    return f"bench{run_id}"


def stripe_event(*, run_id: str, n: int, order_id: int, payer_id: int, amount: int,
                 created: int) -> dict[str, Any]:
    """Event ``n`` of the run: a ``payment_intent.succeeded`` as Stripe delivers it (API
    version 2025-09-30; ``latest_charge`` unexpanded, as in webhooks)."""
    suffix = f"{_prefix(run_id)}{n:08d}"
    intent_id = f"pi_{suffix}"
    intent = {
        "id": intent_id, "object": "payment_intent", "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": amount, "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
        "canceled_at": None, "cancellation_reason": None, "capture_method": "automatic",
        "client_secret": f"{intent_id}_secret_{secrets.token_urlsafe(18)}",
        "confirmation_method": "automatic", "created": created - 5, "currency": "cad",
        "customer": f"cus_{suffix}", "description": f"Jobsite order #{order_id}",
        "excluded_payment_method_types": None, "last_payment_error": None,
        "latest_charge": f"ch_{suffix}", "livemode": False,
        "metadata": {"order_id": str(order_id), "payer_id": str(payer_id),
                     "platform": "jobsite"},
        "next_action": None, "on_behalf_of": None, "payment_method": f"pm_{suffix}",
        "payment_method_configuration_details": {"id": "pmc_1Q0benchJobsiteConfig",
                                                 "parent": None},
        "payment_method_options": {
            "card": {"installments": None, "mandate_options": None, "network": None,
                     "request_three_d_secure": "automatic"},
            "link": {"persistent_token": None},
        },
        "payment_method_types": ["card", "link"], "processing": None,
        "receipt_email": f"payer{n}@bench.jobsite.invalid", "review": None,
        "setup_future_usage": None,
        "shipping": {"address": {"city": "Toronto", "country": "CA", "line1": "100 Queen St W",
                                 "line2": None, "postal_code": "M5H 2N2", "state": "ON"},
                     "carrier": None, "name": f"Bench Payer {n}", "phone": None,
                     "tracking_number": None},
        "source": None, "statement_descriptor": None,
        "statement_descriptor_suffix": "JOBSITE", "status": "succeeded",
        "transfer_data": None, "transfer_group": f"group_order_{order_id}",
    }
    return {"id": f"evt_{suffix}", "object": "event", "api_version": "2025-09-30.clover",
            "created": created, "data": {"object": intent}, "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": f"req_{suffix}", "idempotency_key": secrets.token_hex(16)},
            "type": "payment_intent.succeeded"}


def prepare(count: int, run_id: str) -> dict[str, Any]:
    from bench.runner import _push_users
    from marketplace.models import Order

    payer_ids = _push_users(count, run_id, prefix="bench-pay")
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {Order._meta.db_table} (client_id, title, status, subtotal_cents, "
            "tax_cents, total_cents, currency, province, created_at, updated_at) "
            "SELECT p.id, 'Bench order ' || p.n, 'in_progress', %s, %s, %s, 'CAD', 'ON', "
            "now(), now() FROM unnest(%s::bigint[]) WITH ORDINALITY AS p(id, n) "
            "ORDER BY p.n RETURNING id, client_id",
            [ORDER_SUBTOTAL_CENTS, ORDER_TAX_CENTS, ORDER_SUBTOTAL_CENTS + ORDER_TAX_CENTS,
             payer_ids])
        orders = dict((client, order) for order, client in cursor.fetchall())
    created = int(time.time())
    bodies = [json.dumps(stripe_event(
        run_id=run_id, n=n, order_id=orders[payer], payer_id=payer,
        amount=ORDER_SUBTOTAL_CENTS + ORDER_TAX_CENTS, created=created)).encode()
        for n, payer in enumerate(payer_ids)]
    return {"count": count, "run_id": run_id, "payer_ids": payer_ids, "bodies": bodies}


class WebhookClient:
    """Posts signed bodies from ``connections`` threads, each on one keep-alive
    connection; records each request's status and latency."""

    def __init__(self, host: str, port: int, secret: str, connections: int) -> None:
        self.host, self.port, self.secret, self.connections = host, port, secret, connections
        self.latencies_ms: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.first_sent = math.inf
        self.last_done = 0.0
        self._lock = threading.Lock()

    def post_all(self, bodies: list[bytes]) -> None:
        work = iter(bodies)  # next() on a list iterator is atomic under the GIL
        threads = [threading.Thread(target=self._post, args=(work,), daemon=True)
                   for _ in range(self.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _post(self, work) -> None:
        from payments.stripe_api import signature_header

        conn = http.client.HTTPConnection(self.host, self.port, timeout=60)
        latencies, statuses = [], Counter()
        first, last = math.inf, 0.0
        try:
            for body in work:
                header = signature_header(body.decode(), secret=self.secret)
                sent = time.time()
                try:
                    conn.request("POST", WEBHOOK_PATH, body=body, headers={
                        "Content-Type": "application/json; charset=utf-8",
                        "Stripe-Signature": header,
                        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)"})
                    response = conn.getresponse()
                    response.read()
                    statuses[str(response.status)] += 1
                    if response.will_close:
                        conn.close()
                except (OSError, http.client.HTTPException) as exc:
                    statuses[type(exc).__name__] += 1
                    conn.close()
                done = time.time()
                latencies.append((done - sent) * 1000)
                first, last = min(first, sent), max(last, done)
        finally:
            conn.close()
            with self._lock:
                self.latencies_ms.extend(latencies)
                self.statuses.update(statuses)
                self.first_sent = min(self.first_sent, first)
                self.last_done = max(self.last_done, last)

    def report(self) -> dict[str, Any]:
        from bench.runner import percentile

        seconds = self.last_done - self.first_sent if self.latencies_ms else 0.0
        return {
            "requests": len(self.latencies_ms), "statuses": dict(self.statuses),
            "connections": self.connections, "seconds": round(seconds, 3),
            "per_min": round(len(self.latencies_ms) / seconds * 60, 1) if seconds else None,
            "latency_ms": {f"p{p}": _round(percentile(self.latencies_ms, p))
                           for p in (50, 95, 99)},
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def enqueue(state: dict[str, Any]) -> None:
    web = state["web"]
    client = WebhookClient("127.0.0.1", web.port, web.webhook_secret, CLIENT_CONNECTIONS)
    client.post_all(state["bodies"])
    state["client"] = client


_PROGRESS = """
SELECT
  (SELECT count(*) FROM payments_stripeevent
    WHERE stripe_id LIKE %(events)s AND status <> 'received'),
  (SELECT count(*) FROM notifications_emaillog
    WHERE user_id = ANY(%(payers)s) AND status NOT IN ('queued', 'sending')),
  (SELECT count(*) FROM notifications_pushlog
    WHERE user_id = ANY(%(payers)s) AND status NOT IN ('queued', 'sending'))
"""


def progress(state: dict[str, Any]) -> int:
    """Events done: the fewest of events handled, confirmation emails and pushes final."""
    with connection.cursor() as cursor:
        cursor.execute(_PROGRESS, {"events": f"evt_{_prefix(state['run_id'])}%",
                                   "payers": state["payer_ids"]})
        return min(cursor.fetchone())


def collect(state: dict[str, Any]):
    from notifications.models import EmailLog, EmailStatus, PushLog, PushStatus
    from payments.models import EventStatus, Payment, PaymentStatus, StripeEvent

    prefix = _prefix(state["run_id"])
    events = list(StripeEvent.objects.filter(stripe_id__startswith=f"evt_{prefix}")
                  .values_list("status", "received_at", "processed_at"))
    payments = list(Payment.objects.filter(stripe_payment_intent_id__startswith=f"pi_{prefix}")
                    .values_list("payer_id", "status"))
    emails = list(EmailLog.objects.filter(user_id__in=state["payer_ids"])
                  .values_list("user_id", "status", "sent_at"))
    pushes = list(PushLog.objects.filter(user_id__in=state["payer_ids"])
                  .values_list("user_id", "status", "sent_at"))
    outcomes = Counter()
    for name, rows, status_at in (("event", events, 0), ("payment", payments, 1),
                                  ("email", emails, 1), ("push", pushes, 1)):
        outcomes.update(f"{name} {row[status_at]}" for row in rows)
    processed = [r for r in events if r[0] == EventStatus.PROCESSED]
    done = ({p for p, s in payments if s == PaymentStatus.SUCCEEDED}
            & {u for u, s, _ in emails if s == EmailStatus.SENT}
            & {u for u, s, _ in pushes if s == PushStatus.SENT})
    waits = [(r[2] - r[1]).total_seconds() * 1000 for r in processed]  # stored → processed
    first_start = min((r[2].timestamp() for r in processed), default=0.0)
    last_event = max((r[2].timestamp() for r in processed), default=0.0)
    last_end = max([last_event, *(r[2].timestamp() for r in (*emails, *pushes) if r[2])])
    client: WebhookClient | None = state.get("client")
    web = client.report() if client else {}
    if client and len(processed) == state["count"] and last_event:
        seconds = last_event - client.first_sent
        web["events_processed_per_min"] = round(len(processed) / seconds * 60, 1)
    state["outcomes"] = dict(outcomes)
    state["extra"] = {"webhook": web}
    return len(done & set(state["payer_ids"])), waits, [], first_start, last_end


def cleanup(state: dict[str, Any]) -> None:
    """Everything of the run but its payments, their orders and payers (kept by the
    payment table's guard), and the audit trail of the payments."""
    from bench.runner import _push_rows_delete
    from jobs.ratelimit import rate_limit_reset
    from notifications.models import EmailLog
    from notifications.services.sending import EMAIL_RATE_LIMIT
    from payments.models import StripeEvent

    StripeEvent.objects.filter(stripe_id__startswith=f"evt_{_prefix(state['run_id'])}").delete()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {EmailLog._meta.db_table} WHERE user_id = ANY(%s)",
                       [state["payer_ids"]])
    _push_rows_delete(state["payer_ids"])
    rate_limit_reset(EMAIL_RATE_LIMIT, *state["payer_ids"])
