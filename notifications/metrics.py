"""Prometheus counters of the notifications app (default registry).

Labels are kinds and outcomes only: never users or addresses.
"""

from prometheus_client import Counter

EMAILS_RATE_LIMITED = Counter(
    "jobsite_emails_rate_limited_total",
    "Emails not sent because the user reached the hourly email limit.",
    ["kind"],
)
EMAIL_OUTCOMES = Counter(
    "jobsite_email_outcomes_total",
    "Emails by final outcome (sent, rejected, failed, suppressed, opted_out, bounced).",
    ["kind", "status"],
)
PUSHES_RATE_LIMITED = Counter(
    "jobsite_pushes_rate_limited_total",
    "Pushes not sent because the user reached the hourly push limit.",
    ["kind"],
)
PUSH_OUTCOMES = Counter(
    "jobsite_push_outcomes_total",
    "Pushes by outcome (queued, sent, not_delivered, rejected, failed, opted_out, ...).",
    ["kind", "status"],
)
