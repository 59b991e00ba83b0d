"""Log cleanup (seed 12.8.2): scheduler execution records, failed jobs and old log files
past their retention."""

import logging
import time
from pathlib import Path

from django.conf import settings

from jobs.alerts import staff_emails_prune
from jobs.scheduling.services import schedule_executions_prune
from jobs.services import failed_jobs_purge

logger = logging.getLogger(__name__)


def log_files_prune(*, log_dir: str | Path, older_than_days: int) -> int:
    """Delete regular files under ``log_dir`` not modified for ``older_than_days``."""
    root = Path(log_dir)
    if not root.is_dir():
        return 0
    cutoff = time.time() - older_than_days * 24 * 3600
    deleted = 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            deleted += 1
    return deleted


def log_cleanup() -> dict[str, int | None]:
    """Log cleanup (seed 12.8): execution records, failed jobs and old log files past
    their retention. Returns counts (``log_files`` is ``None`` without ``LOG_DIR``)."""
    counts: dict[str, int | None] = {"executions": schedule_executions_prune(),
                                     "failed_jobs": failed_jobs_purge(),
                                     # As long as a failed run can still be retried.
                                     "staff_emails": staff_emails_prune(
                                         older_than_days=settings.FAILED_JOB_RETENTION_DAYS)}
    if settings.LOG_DIR:
        counts["log_files"] = log_files_prune(log_dir=settings.LOG_DIR,
                                              older_than_days=settings.LOG_RETENTION_DAYS)
    else:
        counts["log_files"] = None
    logger.info("log cleanup", extra=counts)
    return counts
