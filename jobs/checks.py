"""System checks of the platform: the Dramatiq middleware order its guarantees rest on.

Dramatiq calls ``before_*`` hooks in list order and ``after_*`` hooks in reverse, so the
place of each middleware decides what it sees:

- ``jobs.E001``: ``JobExecution`` first. It starts each attempt's timing before anything
  can skip the message, and its after-hooks run last, once ``Retries`` has decided.
- ``jobs.E002``: ``JobStatsMiddleware`` after ``JobExecution`` and before ``Retries``: its
  after-hooks must see ``message.failed``, or a final failure counts as a retry.
- ``jobs.E003``: ``ScheduleRunLock`` last: its after-hooks run first, while the worker
  thread's database connection is still open (``DatabaseConnections`` closes it).
- ``jobs.E004``: every middleware the platform relies on is listed once.
- ``jobs.E005``: ``DatabaseOutageGate`` before ``TimeLimit``: a job held while the database
  is unreachable must not have its time limit running.
- ``jobs.E006``: ``DatabaseOutageRetries`` after ``Retries``: its after-hook must run
  before Retries counts the attempt.
- ``jobs.W001``: staff actions on the platform are announced (``jobs.signals``) with no
  receiver: nothing would audit them (the ``audit`` app is not installed).
"""

from django.conf import settings
from django.core import checks

EXECUTION = "jobs.middleware.execution.JobExecution"
STATS = "jobs.middleware.stats.JobStatsMiddleware"
RETRIES = "dramatiq.middleware.Retries"
SCHEDULE_LOCK = "jobs.middleware.schedule_lock.ScheduleRunLock"
TIME_LIMIT = "dramatiq.middleware.TimeLimit"
OUTAGE_GATE = "jobs.middleware.database.DatabaseOutageGate"
OUTAGE_RETRIES = "jobs.middleware.database.DatabaseOutageRetries"
REQUIRED = (
    EXECUTION, STATS, "jobs.middleware.recovery.WorkerRecovery", OUTAGE_GATE,
    "dramatiq.middleware.AgeLimit", TIME_LIMIT, RETRIES, OUTAGE_RETRIES,
    "dramatiq.middleware.CurrentMessage", "jobs.middleware.debounce.DebounceRelease",
    "jobs.middleware.connections.DatabaseConnections",
    SCHEDULE_LOCK,
)
_HINT = "Keep DRAMATIQ_BROKER['MIDDLEWARE'] in the order config/settings.py lists."


def _normalised(path: str) -> str:
    # dramatiq.middleware.Retries is dramatiq.middleware.retries.Retries re-exported.
    if path.startswith("dramatiq.middleware."):
        return "dramatiq.middleware." + path.rsplit(".", 1)[1]
    return path


def middleware_order_errors(middleware: list[str]) -> list[checks.CheckMessage]:
    """What is wrong with ``middleware`` (dotted paths, in order)."""
    names = [_normalised(path) for path in middleware]
    errors = []
    missing = [path for path in REQUIRED if path not in names]
    doubled = sorted({path for path in names if names.count(path) > 1})
    if missing or doubled:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"listed twice: {', '.join(doubled)}"] if doubled else [])
        errors.append(checks.Error("Dramatiq middleware: " + "; ".join(parts) + ".",
                                   hint=_HINT, id="jobs.E004"))
    if EXECUTION in names and names[0] != EXECUTION:
        errors.append(checks.Error(
            f"{EXECUTION} must be the first Dramatiq middleware: it times every attempt "
            "and must see Retries' decision.", hint=_HINT, id="jobs.E001"))
    if STATS in names and RETRIES in names and not (
            names.index(STATS) < names.index(RETRIES)
            and (EXECUTION not in names or names.index(EXECUTION) < names.index(STATS))):
        errors.append(checks.Error(
            f"{STATS} must come after {EXECUTION} and before {RETRIES}, or a final failure "
            "is counted as a retry.", hint=_HINT, id="jobs.E002"))
    if OUTAGE_GATE in names and TIME_LIMIT in names and (
            names.index(OUTAGE_GATE) > names.index(TIME_LIMIT)):
        errors.append(checks.Error(
            f"{OUTAGE_GATE} must come before {TIME_LIMIT}: a job waiting for the database "
            "would run out of time.", hint=_HINT, id="jobs.E005"))
    if OUTAGE_RETRIES in names and RETRIES in names and (
            names.index(OUTAGE_RETRIES) < names.index(RETRIES)):
        errors.append(checks.Error(
            f"{OUTAGE_RETRIES} must come after {RETRIES}, or attempts failed on a database "
            "outage spend the retry budget.", hint=_HINT, id="jobs.E006"))
    if SCHEDULE_LOCK in names and names[-1] != SCHEDULE_LOCK:
        errors.append(checks.Error(
            f"{SCHEDULE_LOCK} must be the last Dramatiq middleware, so it records a run's "
            "outcome before the database connection is closed.", hint=_HINT, id="jobs.E003"))
    return errors


@checks.register()
def check_dramatiq_middleware(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    broker = getattr(settings, "DRAMATIQ_BROKER", {})
    return middleware_order_errors(list(broker.get("MIDDLEWARE", [])))


@checks.register()
def check_operator_actions_audited(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    from jobs.signals import operator_action

    if operator_action.has_listeners():
        return []
    return [checks.Warning("Nothing receives jobs.signals.operator_action: staff retries, "
                           "discards and schedule edits are not audited.",
                           hint="Install the audit app.", id="jobs.W001")]
