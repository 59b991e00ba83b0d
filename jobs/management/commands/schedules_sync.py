"""Install the default schedules apps declare (``SCHEDULES`` in their tasks modules)."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from jobs.scheduling.services import schedules_sync


class Command(BaseCommand):
    help = (
        "Create the default schedules declared in each app's tasks.SCHEDULES, update the "
        "ones staff never edited, and leave staff edits alone. A default whose actor is not "
        "registered is not installed."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="Report what would change, write nothing.")

    def handle(self, *args, dry_run: bool = False, **options):
        try:
            with transaction.atomic():
                result = schedules_sync()
                if dry_run:
                    transaction.set_rollback(True)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if dry_run:
            self.stdout.write("Dry run: nothing was written.")
        for label, names in [("created", result.created), ("updated", result.updated),
                             ("unchanged", result.unchanged),
                             ("kept (edited by staff)", result.kept_staff_edits),
                             ("not installed (actor not registered)", result.actor_missing)]:
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        self.stdout.write(self.style.SUCCESS(
            f"Schedules: {len(result.created)} created, {len(result.updated)} updated, "
            f"{len(result.kept_staff_edits)} kept staff edits."))
