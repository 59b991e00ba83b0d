"""``manage.py archive_payments --older-than 2y [--dry-run]``: old payment records to cold
storage (GLACIER), verified, then marked archived; never deleted. Manual only."""

from django.core.management.base import BaseCommand, CommandError

from jobs.archive import ArchiveFailed
from payments.services.archive import (
    BATCH_SIZE,
    archive_cutoff,
    payments_archive_count,
    payments_archive_run,
)


class Command(BaseCommand):
    help = ("Write payments created before now - AGE (with their tax lines and journal "
            "entries) to cold storage as verified, compressed JSON Lines, then mark them "
            "archived (never deleted). --dry-run only counts.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than", required=True, metavar="AGE",
                            help="2y, 18m or 90d: payments created before now less this.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Count what would be archived; write and mark nothing.")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)

    def handle(self, *args, older_than: str, dry_run: bool, batch_size: int, **options):
        try:
            cutoff = archive_cutoff(older_than)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        planned = payments_archive_count(cutoff=cutoff)
        summary = ", ".join(f"{name} {count:,}" for name, count in planned.items())
        self.stdout.write(f"Created before {cutoff:%Y-%m-%d %H:%M} UTC, not archived: "
                          f"{summary}")
        if dry_run:
            self.stdout.write("Dry run: nothing written or marked.")
            return
        total = planned["payments"]
        self._progress(0, total)
        try:
            counts = payments_archive_run(cutoff=cutoff, batch_size=batch_size,
                                          progress=lambda done: self._progress(done, total))
        except ArchiveFailed as exc:
            self.stderr.write("")
            raise CommandError(f"Archive failed, its batch marked nothing: {exc}") from None
        self.stderr.write("")
        self.stdout.write(self.style.SUCCESS(
            f"{counts['archives']} archive(s), {counts['payments']:,} payment(s) marked "
            f"archived, {counts['kept_changed']:,} changed meanwhile (left for the next "
            f"run); rows {counts['rows']}"))

    def _progress(self, done: int, total: int, width: int = 30) -> None:
        """A progress bar on stderr: payments handled of those counted at the start."""
        share = min(done / total, 1.0) if total else 1.0
        bar = "#" * round(share * width)
        self.stderr.write(f"\rarchive_payments [{bar:<{width}}] {share:4.0%} "
                          f"{done:,}/{total:,}", ending="")
        self.stderr.flush()
