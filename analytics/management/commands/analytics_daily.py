"""``manage.py analytics_daily --date YYYY-MM-DD [--to YYYY-MM-DD]``: recompute past days."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError, CommandParser

from analytics.services import DayNotOver, daily_statistics_compute_range


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"{value!r} is not a date (YYYY-MM-DD)") from exc


class Command(BaseCommand):
    help = ("Compute the daily statistics of a past business day (America/Toronto), or of "
            "every day from --date to --to included, replacing what was stored for them.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", required=True, help="First day, YYYY-MM-DD.")
        parser.add_argument("--to", help="Last day, YYYY-MM-DD (default: --date).")

    def handle(self, *args, **options) -> None:
        first = _day(options["date"])
        last = _day(options["to"]) if options["to"] else first
        if last < first:
            raise CommandError(f"--to {last} is before --date {first}")
        try:
            rows = daily_statistics_compute_range(first=first, last=last)
        except DayNotOver as exc:
            raise CommandError(str(exc)) from exc
        for row in rows:
            self.stdout.write(f"{row.day}: {row.hours} h, {row.orders_created} orders created, "
                              f"{row.orders_completed} completed, {row.orders_cancelled} "
                              f"cancelled")
        self.stdout.write(self.style.SUCCESS(f"{len(rows)} day(s) computed."))
