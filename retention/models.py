"""Retention runs (what each cleanup did) and legal holds (what no cleanup may delete)."""

from django.conf import settings
from django.db import models
from django.utils import timezone


class RetentionRun(models.Model):
    """One run of one policy's cleanup, with counts per outcome (never the rows)."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        REFUSED = "refused", "Refused (safety check)"
        FAILED = "failed", "Failed"

    policy = models.CharField(max_length=50)
    cleanup = models.CharField(max_length=50, blank=True)
    dry_run = models.BooleanField(default=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.RUNNING)
    cutoff = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    last_id = models.BigIntegerField(default=0, help_text="Resumes from here (batches by id).")
    # Where a run over files and objects resumes ({"phase": ..., "after": key}). A key may
    # name a user, so it is emptied when the run ends and shown nowhere.
    position = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=200, blank=True)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.policy} run #{self.pk}{' (dry run)' if self.dry_run else ''}"


class LegalHold(models.Model):
    """While active, nothing of this user (or this one record) is deleted by retention."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True,
                             blank=True, related_name="legal_holds")
    resource_type = models.CharField(max_length=100, blank=True,
                                     help_text="A single record: app_label.model_name.")
    resource_id = models.CharField(max_length=100, blank=True)
    reason = models.CharField(max_length=200)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    released_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(
            condition=models.Q(user__isnull=False) | ~models.Q(resource_type=""),
            name="legalhold_holds_something")]

    def __str__(self) -> str:
        target = f"user #{self.user_id}" if self.user_id else (
            f"{self.resource_type}#{self.resource_id}")
        return f"Legal hold on {target}"


class RetentionPolicyPage(models.Model):
    """No table: the admin's "Retention policy" page, which shows ``retention.policy``."""

    class Meta:
        managed = False
        verbose_name = verbose_name_plural = "retention policy"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return "Retention policy"


class ArchiveManifest(models.Model):
    """One archive object in cold storage: what it holds (counts, ids, SHA-256; never the
    rows) and when it was last checked against the stored object."""

    class Status(models.TextChoices):
        VERIFIED = "verified", "Verified"
        MISMATCH = "mismatch", "Mismatch (staff alerted)"

    key = models.CharField(max_length=500, unique=True)
    policy = models.CharField(max_length=50)
    model_label = models.CharField(max_length=100)
    run = models.ForeignKey(RetentionRun, on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="archives")
    rows = models.PositiveIntegerField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    sha256 = models.CharField(max_length=64)
    size = models.PositiveBigIntegerField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.VERIFIED)
    problem = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    checked_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Archive #{self.pk} ({self.model_label}, {self.rows} rows)"


class DataStatistic(models.Model):
    """A count the cleanups keep current (messages, unread, active sessions, table sizes):
    counts only, never rows."""

    name = models.CharField(max_length=100, unique=True)
    value = models.BigIntegerField()
    measured_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"
class AccountDeletionNotice(models.Model):
    """The notice that an inactive account will be deleted, and what became of it.

    Kept after the deletion (ids and dates only) as the record that the user was told.
    At most one is pending per user."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending (notice sent)"
        CANCELLED = "cancelled", "Cancelled"
        DELETED = "deleted", "Account deleted"

    class CancelReason(models.TextChoices):
        ACTIVITY = "activity", "The user was active again"
        LEGAL_HOLD = "legal_hold", "A legal hold was placed"
        NOT_A_CANDIDATE = "not_a_candidate", "No longer a candidate (staff)"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT,
                             related_name="deletion_notices")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    notified_at = models.DateTimeField(default=timezone.now)
    delete_after = models.DateTimeField(db_index=True)
    # The notice email (its log row goes with the account's other email logs).
    email_log = models.ForeignKey("notifications.EmailLog", on_delete=models.SET_NULL,
                                  null=True, blank=True, related_name="+")
    # What send_email answered: queued, or why nothing went out (suppressed, ...).
    email_status = models.CharField(max_length=16, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=16, choices=CancelReason.choices, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-notified_at"]
        constraints = [models.UniqueConstraint(
            fields=["user"], condition=models.Q(status="pending"),
            name="one_pending_deletion_notice_per_user")]

    def __str__(self) -> str:
        return f"Deletion notice #{self.pk} (user #{self.user_id}, {self.status})"
