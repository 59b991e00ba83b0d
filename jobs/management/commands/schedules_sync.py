"""Install the default schedules apps declare (``SCHEDULES`` in their tasks modules)."""

from django.core.management.base import BaseCommand, CommandError

from jobs.scheduling.services import schedules_sync


class Command(BaseCommand):
    help = (
        "Create the default schedules declared in each app's tasks.SCHEDULES, update the "
        "ones staff never edited, and leave staff edits alone. A default whose actor is not "
        "registered is not installed."
    )

    def handle(self, *args, **options):
        try:
            result = schedules_sync()
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        for label, names in [("created", result.created), ("updated", result.updated),
                             ("unchanged", result.unchanged),
                             ("kept (edited by staff)", result.kept_staff_edits),
                             ("not installed (actor not registered)", result.actor_missing)]:
            if names:
                self.stdout.write(f"{label}: {', '.join(names)}")
        self.stdout.write(self.style.SUCCESS(
            f"Schedules: {len(result.created)} created, {len(result.updated)} updated, "
            f"{len(result.kept_staff_edits)} kept staff edits."))
