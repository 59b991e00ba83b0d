from django.db import models
from django.utils import timezone


class StaffEmail(models.Model):
    """One staff email that must go out once (``jobs.alerts.email_staff_once``): a
    report's run, a dispute's stage. The row is the claim; ``sent_at`` says it went out.

    Subjects carry ids and counts only (as every staff alert does); no address is kept.
    Rows are pruned with the other logs (``log-cleanup``).
    """

    key = models.CharField(max_length=200, unique=True)
    subject = models.CharField(max_length=300)
    claimed_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    recipients = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-claimed_at"]

    def __str__(self) -> str:
        return self.key
