"""``manage.py retention report`` (counts only) and ``manage.py retention run CLEANUP``
(a dry run unless ``--for-real``), batch by batch with a progress line. ``inactive-accounts``
(``retention.accounts``: notices, then deletions) runs and reports like a cleanup."""

import sys
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
)


class Command(BaseCommand):
    help = "Retention: report what each cleanup would remove now, or run one."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("report", help="What each cleanup would delete and keep, and what "
                                      "the inactive-accounts run would do (counts).")
        run = sub.add_parser("run", help="Run one cleanup (dry run unless --for-real).")
        run.add_argument("cleanup", choices=sorted([*CLEANUPS, accounts.POLICY_KEY]))
        run.add_argument("--for-real", action="store_true", help="Delete (default: count).")
        run.add_argument("--before", help="An earlier cutoff (ISO 8601) than the policy's.")

    def handle(self, *args, action, **options):
        if action == "report":
            for row in [*retention_report(), accounts.inactive_accounts_report()]:
                counts = ", ".join(f"{key} {value:,}" for key, value in row.items()
                                   if isinstance(value, int))
                self.stdout.write(f"{row['cleanup']} ({row['policy']}, before "
                                  f"{row['cutoff']:%Y-%m-%d %H:%M} UTC): {counts}")
            return
        before = parse_datetime(options["before"]) if options["before"] else None
        if options["before"] and before is None:
            raise CommandError("--before must be an ISO 8601 date and time")
        name, dry_run = options["cleanup"], not options["for_real"]
        if name == accounts.POLICY_KEY:
            start, step = accounts.inactive_accounts_run_start, accounts.inactive_accounts_run_step
        else:
            start, step = (partial(retention_run_start, name),
                           partial(retention_run_step, name=name))
        try:
            run = start(dry_run=dry_run, cutoff=before)
        except RetentionRefused as exc:
            raise CommandError(f"Refused: {exc}. Nothing was deleted.") from None
        while step(run.pk, max_batches=1) == Step.MORE:
            run.refresh_from_db()
            sys.stderr.write(f"\r{run}: up to id {run.last_id:,}, {run.counts}")
        run.refresh_from_db()
        sys.stderr.write("\n")
        self.stdout.write(self.style.SUCCESS(f"{run}: {run.counts}"))
