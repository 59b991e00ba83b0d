"""The retention policy (PIPEDA), as one table: the single source the cleanup actors, the
admin page "Retention policy", ``manage.py retention report``, the README's table and the
tests read. It matches the seed plan's table row for row.

Every model that holds personal data (a link to a user, or an address) is covered by a
policy here, or exempt with a reason; the ``retention.E001`` check fails otherwise.
"""

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class Policy:
    key: str  # stable: `manage.py retention run <key>`, RetentionRun.policy
    data_type: str
    period: timedelta | None  # None: kept until the user deletes it
    period_label: str
    auto_delete: str
    schedule: str
    legal_basis: str
    rule: str
    models: tuple[str, ...] = ()  # the models (app_label.model_name) it governs
    # The cleanup this code runs for it (None: not built yet, or never automatic).
    cleanup: str | None = None


DAY = timedelta(days=1)

POLICIES: tuple[Policy, ...] = (
    Policy("chat-messages", "Chat messages", 90 * DAY, "90 days", "Yes (keep unread)",
           "Daily 02:00 UTC", "Business requirement",
           "read messages older than 90 days deleted; unread kept at any age; important "
           "ones kept until archived", ("marketplace.chatmessage",), cleanup="chat-cleanup"),
    Policy("payment-records", "Payment records", 7 * 365 * DAY, "7 years",
           "NO (manual only)", "Archive after 2 years", "Canadian Tax Law (CRA)",
           "never deleted by any retention path; archived to cold storage after 2 years "
           "(manage.py archive_payments)", ("payments.payment", "payments.subscription")),
    Policy("audit-logs", "Audit logs", 365 * DAY, "1 year minimum", "Yes",
           "Weekly (Sunday 01:00 UTC)", "PIPEDA requirement",
           "entries older than 1 year deleted; critical ones kept until archived",
           ("audit.auditlog", "admin.logentry")),
    Policy("session-data", "Session data", 7 * DAY, "7 days", "Yes", "Daily 03:00 UTC",
           "Security requirement",
           "sessions expired or idle for 7 days, and inactive, revoked or expired refresh "
           "tokens deleted", ("marketplace.usersession", "marketplace.refreshtoken",
                              "sessions.session")),
    Policy("notification-history", "Notification history", 90 * DAY, "90 days",
           "Yes (keep unread)", "Daily 04:00 UTC", "Business requirement",
           "read in-app notifications older than 90 days deleted; unread kept at any age; "
           "important ones kept until archived",
           ("notifications.notification", "notifications.emaillog", "notifications.pushlog"),
           cleanup="notification-cleanup"),
    Policy("inactive-accounts", "Inactive accounts", 2 * 365 * DAY, "2 years",
           "Yes (with notice)", "Monthly (1st 00:00 UTC)", "PIPEDA + Business",
           "accounts without activity for 2 years: notice 30 days before, then personal "
           "data removed, orders anonymised, payments untouched", ("marketplace.user",),
           cleanup="inactive-accounts"),
    Policy("temp-files", "Temp files", DAY, "24 hours", "Yes", "Daily 05:00 UTC",
           "Technical requirement",
           "temporary uploads and processing leftovers older than 24 hours deleted, "
           "incomplete multipart uploads aborted", cleanup="temp-files-cleanup"),
    Policy("user-accounts", "User accounts", None, "Until deleted", "NO (user choice)",
           "On user request", "PIPEDA requirement",
           "kept until the user deletes the account",
           ("marketplace.user", "marketplace.contractorprofile", "marketplace.order",
            "marketplace.review", "marketplace.clientrating", "notifications.emailpreference",
            "notifications.pushpreference", "notifications.device")),
)

#: Models that hold a link to a user but no personal data of their own, and why.
EXEMPT: dict[str, str] = {
    "jobs.failedjob": "staff ids only; pruned FAILED_JOB_RETENTION_DAYS after the last "
                      "failure by the log-cleanup schedule",
    "notifications.pushcampaign": "the staff author only",
    "notifications.suppression": "an address kept so it is never mailed again (a bounce "
                                 "or complaint must be honoured, CASL)",
    "retention.legalhold": "the held user's id only, kept as the record of the hold",
    "retention.accountdeletionnotice": "the user's id, dates and outcome only, kept as the "
                                       "record that the user was told before the deletion",
}


def policy(key: str) -> Policy:
    for candidate in POLICIES:
        if candidate.key == key:
            return candidate
    raise KeyError(f"No retention policy {key!r}; one of: "
                   + ", ".join(p.key for p in POLICIES))


TABLE_HEADER = ("Data type", "Retention period", "Auto-delete", "Cleanup schedule",
                "Legal basis")


def policy_table_rows() -> list[tuple[str, ...]]:
    """The seed's five columns, row by row (the README and the admin page show them)."""
    return [(p.data_type, p.period_label, p.auto_delete, p.schedule, p.legal_basis)
            for p in POLICIES]


def policy_table_markdown() -> str:
    lines = ["| " + " | ".join(TABLE_HEADER) + " |",
             "|" + "|".join("---" for _ in TABLE_HEADER) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in policy_table_rows()]
    return "\n".join(lines)
