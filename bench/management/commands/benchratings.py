"""Benchmark the nightly full ratings recalculation on a loaded marketplace."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from bench import marketplace
from bench.runner import bare_baseline, machine

# The statistics issue's figure (recalculation and search reindex together), 2 cores.
GOAL_S = 120.0


class Command(BaseCommand):
    help = (
        "Load --profiles contractor profiles with --reviews reviewed orders (bench."
        "marketplace.load; --reuse keeps a load of the same size), run the nightly "
        "ratings recalculation --runs times through the ratings_recalculate actor on a "
        "real 'runworkergroup batch' worker, and print each run's duration and CPU. The "
        "first run writes every profile; a second finds nothing changed. Uses the "
        "configured PostgreSQL, Redis and DRAMATIQ_NAMESPACE: a bench database, not "
        "production's."
    )

    def add_arguments(self, parser):
        parser.add_argument("--profiles", type=int, default=100_000)
        parser.add_argument("--reviews", type=int, default=1_000_000,
                            help="completed orders, each reviewed by its client (default "
                                 "1,000,000); every 5th also reviews the client")
        parser.add_argument("--runs", type=int, default=2)
        parser.add_argument("--reuse", action="store_true",
                            help="keep the loaded data when it has the requested size "
                                 "(its ratings reset to never recalculated)")
        parser.add_argument("--keep", action="store_true",
                            help="leave the benchmark's rows in place afterwards")
        parser.add_argument("--timeout", type=float, default=600.0)
        parser.add_argument("--bare-count", type=int, default=20_000,
                            help="bare-Dramatiq no-ops measured first (0: skip)")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        if not settings.DEBUG and settings.EMAIL_ESP != "test":
            raise CommandError("benchratings loads and deletes marketplace rows in the "
                               "configured database; run it with DEBUG=true on a bench setup.")
        if min(options["profiles"], options["reviews"], options["runs"]) < 1:
            raise CommandError("--profiles, --reviews and --runs must be at least 1.")

        def progress(text: str) -> None:
            if not options["json"]:
                self.stderr.write(text)

        report = {"machine": machine(), "goal_s": GOAL_S}
        try:
            with override_settings(DEBUG=False):
                if options["bare_count"] > 0:
                    report["bare_dramatiq_jobs_per_min"] = round(
                        bare_baseline(options["bare_count"], progress).jobs_per_min)
                loaded = marketplace.counts()
                wanted = (options["profiles"], options["reviews"])
                if options["reuse"] and (loaded.profiles, loaded.orders) == wanted:
                    marketplace.ratings_reset(progress)  # run 1 writes every row again
                else:
                    loaded = marketplace.load(*wanted, progress=progress)
                    report["load_s"] = round(loaded.seconds, 1)
                report["loaded"] = {k: v for k, v in vars(loaded).items() if k != "seconds"}
                report["runs"] = []
                for _ in range(options["runs"]):
                    run = marketplace.ratings_run(timeout_s=options["timeout"],
                                                  progress=progress)
                    run["problems"] = marketplace.ratings_verify(loaded)
                    report["runs"].append(run)
                if not options["keep"]:
                    marketplace.delete_bench_data(progress)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        problems = [problem for run in report["runs"] for problem in run["problems"]]
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self.stdout.write(render(report))
        if problems:
            raise CommandError("Verification failed: " + "; ".join(problems))


def render(report: dict) -> str:
    m, loaded = report["machine"], report["loaded"]
    lines = [
        f"Machine: {m['cores']} cores, {m['cpu']}; PostgreSQL {m['postgresql']}; load "
        f"average before {'/'.join(str(x) for x in m['load_average'])}",
        *([f"Bare Dramatiq no-op baseline: {report['bare_dramatiq_jobs_per_min']:,} "
           "jobs/min"] if "bare_dramatiq_jobs_per_min" in report else []),
        f"Data: {loaded['profiles']:,} profiles, {loaded['clients']:,} clients, "
        f"{loaded['orders']:,} orders, {loaded['contractor_reviews']:,} reviews of "
        f"contractors + {loaded['client_reviews']:,} of clients"
        + (f" (loaded in {report['load_s']:.0f} s)" if "load_s" in report else ""),
    ]
    for n, run in enumerate(report["runs"], 1):
        cpu = run["cpu"]
        lines.append(
            f"Run {n} (#{run['run_id']}): {run['run_s']:.1f} s (wall from the send "
            f"{run['wall_s']:.1f} s; goal < {GOAL_S:.0f} s with the reindex); worker CPU "
            f"{cpu['worker_s']} s, PostgreSQL backends {cpu['postgres_bench_backends_s']} "
            f"s; {run['counts']}; priors {run['priors']}; verification: "
            f"{'; '.join(run['problems']) or 'ok'}")
    return "\n".join(lines)
