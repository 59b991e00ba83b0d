"""Print the readiness report of /health/ready; exit non-zero when not ready."""

import json

from django.core.management.base import BaseCommand, CommandError

from jobs.monitoring.health import readiness_report


class Command(BaseCommand):
    help = (
        "Check database, Redis, queues, workers, scheduler and clamd like /health/ready. "
        "Exits 0 when ready, 1 when not."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="Print the report as JSON.")

    def handle(self, *args, as_json: bool = False, **options):
        report = readiness_report()
        if as_json:
            self.stdout.write(_dumps(report))
        else:
            self.stdout.write(format_report(report))
        if report["status"] != "ready":
            raise CommandError("Not ready: " + ", ".join(report["failing"]), returncode=1)


def _dumps(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True)


def format_report(report: dict) -> str:
    lines = [f"status: {report['status']}"]
    for name, result in report["checks"].items():
        mark = "ok " if result["ok"] else "FAIL"
        details = ", ".join(
            f"{key}={value}" for key, value in result.items()
            if key not in ("ok", "queues") and value not in (None, [], "")
        )
        lines.append(f"[{mark}] {name}" + (f": {details}" if details else ""))
        for queue, info in result.get("queues", {}).items():
            queue_mark = "ok " if info["ok"] else "FAIL"
            age = info["oldest_age_seconds"]
            lines.append(
                f"    [{queue_mark}] {queue}: ready={info['ready']} "
                f"in_flight={info['in_flight']} delayed={info['delayed']} dead={info['dead']} "
                f"oldest={'-' if age is None else f'{age:.0f}s'}"
                + (f" ({'; '.join(info['problems'])})" if info["problems"] else "")
            )
    return "\n".join(lines)
