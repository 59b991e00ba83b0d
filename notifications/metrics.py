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
