"""Run the Dramatiq worker for one queue group (see ``jobs.queues.WORKER_GROUPS``)."""

import os

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from jobs.queues import WORKER_GROUPS

# Threads per process: I/O-bound groups wait on ESPs and APIs; images are CPU-bound.
DEFAULT_THREADS = {"high": 16, "push": 8, "images": 2, "batch": 4}


class Command(BaseCommand):
    help = "Run rundramatiq on the queues of one worker group: " + ", ".join(
        f"{name} ({', '.join(queues)})" for name, queues in WORKER_GROUPS.items()
    )

    def add_arguments(self, parser):
        parser.add_argument("group", choices=sorted(WORKER_GROUPS))
        parser.add_argument("--processes", type=int, default=1)
        parser.add_argument("--threads", type=int, default=None)

    def handle(self, *args, group, processes, threads, **options):
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        # Read by the worker metrics exporter (jobs.monitoring.metrics): a port per group.
        os.environ["JOBSITE_WORKER_GROUP"] = group
        call_command(
            "rundramatiq",
            processes=processes,
            threads=threads or DEFAULT_THREADS[group],
            queues=[queue.value for queue in WORKER_GROUPS[group]],
        )
