"""``manage.py retention report`` (counts only) and ``manage.py retention run CLEANUP``
(a dry run unless ``--for-real``), batch by batch with a progress line."""

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from retention.services import (
    CLEANUPS,
    RetentionRefused,
    Step,
    retention_report,
    retention_run_start,
    retention_run_step,
    retention_run_total,
)

#: The counts of a run that advance its progress bar.
PROGRESS_KEYS = ("deleted", "archived", "would_delete", "would_archive", "kept_changed")


class Command(BaseCommand):
    help = "Retention: report what each cleanup would remove now, or run one."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("report", help="What each cleanup would delete and keep (counts).")
        run = sub.add_parser("run", help="Run one cleanup (dry run unless --for-real).")
        run.add_argument("cleanup", choices=sorted(CLEANUPS))
        run.add_argument("--for-real", action="store_true", help="Delete (default: count).")
        run.add_argument("--before", help="An earlier cutoff (ISO 8601) than the policy's.")

    def handle(self, *args, action, **options):
        if action == "report":
            for row in retention_report():
                counts = ", ".join(f"{key} {value:,}" for key, value in row.items()
                                   if isinstance(value, int))
                self.stdout.write(f"{row['cleanup']} ({row['policy']}, before "
                                  f"{row['cutoff']:%Y-%m-%d %H:%M} UTC): {counts}")
            return
        before = parse_datetime(options["before"]) if options["before"] else None
        if options["before"] and before is None:
            raise CommandError("--before must be an ISO 8601 date and time")
        try:
            run = retention_run_start(options["cleanup"], dry_run=not options["for_real"],
                                      cutoff=before)
        except RetentionRefused as exc:
            raise CommandError(f"Refused: {exc}. Nothing was deleted.") from None
        total = retention_run_total(run)
        while retention_run_step(run.pk, options["cleanup"], max_batches=1) == Step.MORE:
            run.refresh_from_db()
            self._progress(run, total)
        run.refresh_from_db()
        self._progress(run, total)
        self.stderr.write("")
        self.stdout.write(self.style.SUCCESS(f"{run}: {run.counts}"))

    def _progress(self, run, total: int, width: int = 30) -> None:
        """A progress bar on stderr: rows handled of those the run found at its start."""
        done = sum(run.counts.get(key, 0) for key in PROGRESS_KEYS)
        share = min(done / total, 1.0) if total else 1.0
        bar = "#" * round(share * width)
        self.stderr.write(f"\r{run.cleanup} [{bar:<{width}}] {share:4.0%} "
                          f"{done:,}/{total:,}", ending="")
        self.stderr.flush()
