"""Redis epochs: how the platform notices that Redis lost its data (``jobs.recovery``)."""

from django.db import models
from django.utils import timezone


class BrokerEpoch(models.Model):
    """One lifetime of the Redis data. Redis holds the current ``token``
    (``<namespace>:epoch``); when it comes back without it, a new epoch starts with
    ``data_lost_at`` set, and ``redriven`` says how many unfinished jobs were sent again."""

    token = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    data_lost_at = models.DateTimeField(null=True, blank=True)
    recovered_at = models.DateTimeField(null=True, blank=True)
    redriven = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "Redis epoch"

    def __str__(self) -> str:
        return f"Redis epoch #{self.pk}"
