"""Benchmark the chat-message retention cleanup on a real worker beside a live writer."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from bench import retention
from bench.runner import bare_baseline, machine
from jobs.management.commands.runworkergroup import DEFAULT_THREADS

# The retention issue's figures, on a 2-core machine.
DELETION_GOAL_S = 120.0
WRITER_GOAL_MS = 1000.0


class Command(BaseCommand):
    help = (
        "Load --count expired chat messages and --count to keep (unread, important, recent "
        "and held ones, interleaved by id), run the chat cleanup through the "
        "retention_cleanup actor on a real 'runworkergroup batch' worker while a writer "
        "inserts a message every 10 ms, and print the deletion's wall time and the "
        "writer's insert latency against the issue's goals (2 minutes; 1 s). Verifies "
        "that exactly the expired rows went and no kept row changed. Uses the configured "
        "PostgreSQL, Redis and DRAMATIQ_NAMESPACE: not production's."
    )

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=1_000_000,
                            help="expired messages, and as many kept (default 1,000,000)")
        parser.add_argument("--threads", type=int, default=DEFAULT_THREADS["batch"],
                            help="worker threads (default: the batch group's)")
        parser.add_argument("--timeout", type=float, default=600.0,
                            help="seconds to wait for the run to finish (default 600)")
        parser.add_argument("--keep", action="store_true",
                            help="leave the benchmark's users and messages in place")
        parser.add_argument("--json", action="store_true", help="print JSON, not text")
        parser.add_argument("--bare-count", type=int, default=20_000,
                            help="bare-Dramatiq no-ops measured first, the machine's speed "
                                 "in this run (0: skip; default 20,000)")

    def handle(self, *args, **options):
        # Production has DEBUG off and a real ESP: this deletes expired chat messages.
        if not settings.DEBUG and settings.EMAIL_ESP != "test":
            raise CommandError("benchretention writes and deletes chat messages in the "
                               "configured database; run it with DEBUG=true on a bench "
                               "setup.")
        if options["count"] < 1 or options["threads"] < 1:
            raise CommandError("--count and --threads must be at least 1.")

        def progress(text: str) -> None:
            if not options["json"]:
                self.stderr.write(text)

        machine_info = machine()
        bare = None
        try:
            with override_settings(DEBUG=False):
                if options["bare_count"] > 0:
                    bare = bare_baseline(options["bare_count"], progress)
                outcome = retention.run(options["count"], timeout_s=options["timeout"],
                                        threads=options["threads"], keep=options["keep"],
                                        progress=progress)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from exc
        report = build_report(outcome, machine_info)
        if bare is not None:
            report["bare_dramatiq"] = {"jobs": bare.jobs, "jobs_per_min": bare.jobs_per_min}
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2))
        else:
            self.stdout.write(render(report))
        problems = outcome.verification["problems"]
        if problems:
            raise CommandError("Verification failed: " + "; ".join(problems))


def build_report(outcome: retention.Outcome, machine_info: dict) -> dict:
    count = outcome.prepared.count
    return {
        "machine": machine_info,
        "count": count,
        "prepare_s": round(outcome.prepared.seconds, 1),
        "deletion": {"wall_s": round(outcome.deletion_s, 2),
                     "worker_run_s": round(outcome.worker_s, 2),
                     "rows_per_s": round(count / outcome.deletion_s) if outcome.deletion_s
                     else None,
                     "goal_s": DELETION_GOAL_S, "met": outcome.deletion_s < DELETION_GOAL_S,
                     "run_id": outcome.run.pk, "run_counts": outcome.run.counts},
        "writer": {**outcome.writer, "goal_ms": WRITER_GOAL_MS,
                   "met": (outcome.writer["max_ms"] or 0) < WRITER_GOAL_MS
                   and outcome.writer["inserts"] > 0},
        "writer_before_cleanup": outcome.writer_baseline,
        "cpu": outcome.cpu,
        "verification": {**outcome.verification, "ok": not outcome.verification["problems"]},
        "cleanup_s": round(outcome.cleanup_s, 1),
    }


def _ms(value) -> str:
    return "—" if value is None else f"{value:,.1f} ms"


def render(report: dict) -> str:
    m, d, w, b = report["machine"], report["deletion"], report["writer"], report[
        "writer_before_cleanup"]
    cpu, v = report["cpu"], report["verification"]
    count = report["count"]
    left = ", ".join(f"{kind} {rows:,}" for kind, rows in v["left"].items())
    lines = [
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB RAM; PostgreSQL "
        f"{m['postgresql']}, Redis {m['redis']}, Dramatiq {m['dramatiq']}; load average "
        f"before the run {'/'.join(str(x) for x in m['load_average'])}",
        *([f"Bare Dramatiq no-op baseline of this run: "
           f"{report['bare_dramatiq']['jobs_per_min']:,.0f} jobs/min "
           f"({report['bare_dramatiq']['jobs']:,} jobs, 2 processes × 8 threads)"]
          if "bare_dramatiq" in report else []),
        f"Prepared {count:,} expired + {count:,} kept chat messages in "
        f"{report['prepare_s']:.1f} s (not part of the figures)",
        "",
        f"Deletion of {count:,} expired messages: {d['wall_s']:.1f} s wall "
        f"(goal < {d['goal_s']:.0f} s: {'met' if d['met'] else 'NOT MET'}), "
        f"{d['rows_per_s']:,} rows/s; the run itself {d['worker_run_s']:.1f} s",
        f"Concurrent writer: {w['inserts']:,} inserts, max {_ms(w['max_ms'])} "
        f"(goal < {w['goal_ms']:,.0f} ms: {'met' if w['met'] else 'NOT MET'}), "
        f"p99 {_ms(w['p99_ms'])}, p50 {_ms(w['p50_ms'])}, over 1 s: {w['over_1s']}",
        f"  the writer alone, before the cleanup: {b['inserts']:,} inserts, max "
        f"{_ms(b['max_ms'])}, p99 {_ms(b['p99_ms'])}, p50 {_ms(b['p50_ms'])}",
        f"CPU during the deletion: worker {cpu['worker_s']:.1f} s, PostgreSQL backends of "
        f"this database {cpu['postgres_bench_backends_s']:.1f} s, whole PostgreSQL server "
        f"{cpu['postgres_server_s']:.1f} s (shared); {cpu['cores_busy']} cores busy",
        f"Verification: {'ok' if v['ok'] else 'FAILED'} — deleted {v['deleted']:,}; "
        f"left {left}; the writer's {v['writer_rows_kept']:,} rows kept",
    ]
    lines += [f"  problem: {p}" for p in v["problems"]]
    lines.append(f"Deleted the benchmark's rows afterwards in {report['cleanup_s']:.1f} s")
    return "\n".join(lines) + "\n"
