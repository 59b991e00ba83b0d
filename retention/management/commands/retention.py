"""``manage.py retention report`` (counts only) and ``manage.py retention run CLEANUP``
(a dry run unless ``--for-real``), batch by batch with a progress bar. The temp-files
cleanup (``retention/tempfiles.py``, walking files and objects, not rows) and
``inactive-accounts`` (``retention.accounts``: notices, then deletions) run and report
like the others."""

from functools import partial

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from retention import accounts
from retention.services import (
    CLEANUPS,
    RetentionRefused,
    Step,
    retention_report,
    retention_run_start,
    retention_run_step,
    retention_run_total,
)
from retention.tempfiles import (
    TEMP_FILES_CLEANUP,
    temp_files_report,
    temp_files_run_start,
    temp_files_run_step,
)

#: Runs that are not row cleanups: name → (start, step).
OTHER_RUNS = {
    TEMP_FILES_CLEANUP: (temp_files_run_start, temp_files_run_step),
    accounts.POLICY_KEY: (accounts.inactive_accounts_run_start,
                          accounts.inactive_accounts_run_step),
}

#: The counts of a run that advance its progress bar.
PROGRESS_KEYS = ("deleted", "archived", "would_delete", "would_archive", "kept_changed")


class Command(BaseCommand):
    help = "Retention: report what each cleanup would remove now, or run one."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("report", help="What each cleanup would delete and keep, and what "
                                      "the inactive-accounts run would do (counts).")
        run = sub.add_parser("run", help="Run one cleanup (dry run unless --for-real).")
        run.add_argument("cleanup", choices=sorted([*CLEANUPS, *OTHER_RUNS]))
        run.add_argument("--for-real", action="store_true", help="Delete (default: count).")
        run.add_argument("--before", help="An earlier cutoff (ISO 8601) than the policy's.")

    def handle(self, *args, action, **options):
        if action == "report":
            for row in [*retention_report(), temp_files_report(),
                        accounts.inactive_accounts_report()]:
                counts = ", ".join(f"{key} {value:,}" for key, value in row.items()
                                   if isinstance(value, int))
                if "refused" in row:
                    counts = f"a run would be refused: {row['refused']}"
                self.stdout.write(f"{row['cleanup']} ({row['policy']}, before "
                                  f"{row['cutoff']:%Y-%m-%d %H:%M} UTC): {counts}")
            return
        before = parse_datetime(options["before"]) if options["before"] else None
        if options["before"] and before is None:
            raise CommandError("--before must be an ISO 8601 date and time")
        name, dry_run = options["cleanup"], not options["for_real"]
        if name in OTHER_RUNS:
            start, step = OTHER_RUNS[name]
        else:
            start, step = (partial(retention_run_start, name),
                           partial(retention_run_step, name=name))
        try:
            run = start(dry_run=dry_run, cutoff=before)
        except RetentionRefused as exc:
            raise CommandError(f"Refused: {exc}. Nothing was deleted.") from None
        # Walks of files and users do not know their total in advance: their bar is counts.
        total = retention_run_total(run) if name in CLEANUPS else None
        while step(run.pk, max_batches=1) == Step.MORE:
            run.refresh_from_db()
            self._progress(run, total)
        run.refresh_from_db()
        self._progress(run, total)
        self.stderr.write("")
        self.stdout.write(self.style.SUCCESS(f"{run}: {run.counts}"))

    def _progress(self, run, total: int | None, width: int = 30) -> None:
        """A progress bar on stderr: rows handled of those the run found at its start
        (counts only: a temp-files run's position is a key, which may name a user)."""
        if total is None:
            self.stderr.write(f"\r{run.cleanup}: {run.counts}", ending="")
            self.stderr.flush()
            return
        done = sum(run.counts.get(key, 0) for key in PROGRESS_KEYS)
        share = min(done / total, 1.0) if total else 1.0
        bar = "#" * round(share * width)
        self.stderr.write(f"\r{run.cleanup} [{bar:<{width}}] {share:4.0%} "
                          f"{done:,}/{total:,}", ending="")
        self.stderr.flush()
