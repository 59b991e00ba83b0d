"""``manage.py accounting_export [--date YYYY-MM-DD]``: the journal CSV of one business day
(default: yesterday in the business time zone), as the daily schedule writes it."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from payments.services.accounting_export import accounting_export, previous_business_day


class Command(BaseCommand):
    help = ("Export one business day's journal lines as CSV to the archive store "
            "(accounting/journal/YYYY/MM/DD.csv); re-running a day rewrites the same bytes.")

    def add_arguments(self, parser):
        parser.add_argument("--date", dest="day", help="The business day, YYYY-MM-DD "
                                                       "(default: yesterday).")

    def handle(self, *args, day: str | None, **options):
        if day is None:
            chosen = previous_business_day()
        else:
            try:
                chosen = date.fromisoformat(day)
            except ValueError:
                raise CommandError("--date must be YYYY-MM-DD") from None
        if chosen > previous_business_day():
            # Entries of a day still going on would be missing from its file.
            raise CommandError(f"{chosen} is not over yet in the business time zone")
        result = accounting_export(day=chosen)
        state = "written" if result["written"] else "unchanged"
        self.stdout.write(f"{result['key']}: {result['lines']} line(s), {state}, "
                          f"sha256 {result['sha256']}")
