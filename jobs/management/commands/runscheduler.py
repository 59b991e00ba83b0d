"""Run the scheduler: APScheduler with django-apscheduler's DjangoJobStore."""

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from jobs.scheduling.scheduler import SchedulerRunner


class Command(BaseCommand):
    help = (
        "Run the scheduler. It mirrors jobs.Schedule rows into APScheduler jobs (edits apply "
        "within --sync-seconds), enqueues each schedule's actor when it is due (workers do "
        "the work), and holds a Redis leader lock so that of several runscheduler processes "
        "exactly one fires; another takes over within --lock-ttl seconds if it dies."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sync-seconds", type=float, default=None,
                            help="How often schedule edits are picked up "
                                 "(default SCHEDULER_SYNC_SECONDS).")
        parser.add_argument("--lock-ttl", type=float, default=None,
                            help="Leader lock TTL in seconds (default "
                                 "SCHEDULER_LOCK_TTL_SECONDS).")
        parser.add_argument("--tick-seconds", type=int, default=None,
                            help="Tests and diagnostics only: fire every enabled schedule "
                                 "every N seconds instead of by its cron.")

    def handle(self, *args, sync_seconds, lock_ttl, tick_seconds, **options):
        sync_seconds = sync_seconds or settings.SCHEDULER_SYNC_SECONDS
        lock_ttl = lock_ttl or settings.SCHEDULER_LOCK_TTL_SECONDS
        if sync_seconds <= 0 or sync_seconds > 10:
            raise CommandError("--sync-seconds must be in (0, 10]: edits apply within 10 s.")
        if lock_ttl < 1:
            raise CommandError("--lock-ttl must be at least 1 second.")
        if tick_seconds is not None and not 1 <= tick_seconds <= 59:
            raise CommandError("--tick-seconds must be between 1 and 59.")
        runner = SchedulerRunner(sync_seconds=sync_seconds, lock_ttl_seconds=lock_ttl,
                                 tick_seconds=tick_seconds)

        def stop(signum, frame):
            runner.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        self.stdout.write(f"Scheduler running (sync every {sync_seconds:g} s, leader lock TTL "
                          f"{lock_ttl:g} s).")
        runner.run()
        self.stdout.write("Scheduler stopped.")
