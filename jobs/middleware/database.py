"""Dramatiq middleware: a PostgreSQL outage pauses the workers instead of failing jobs.

A job that fails because the database cannot be reached would otherwise spend its retry
budget during the outage (a 20 s outage pushed 1,384 jobs into retries; one longer than
an email's 8–15-minute budget would fail them for good). Here:

- ``DatabaseOutageRetries`` (after ``Retries`` in the list, so its after-hook runs first)
  sees a job fail with a connection error, asks the database itself (a new connection,
  ``SELECT 1``), and when that fails too opens the breaker and takes the attempt back off
  the job's retry count: Retries sends it back without spending its budget.
- ``DatabaseOutageGate`` (before ``TimeLimit``, so waiting is not run time) holds every
  job at its start while the breaker is open. One probe a second reopens the way when the
  database answers again; nothing is failed, dropped or spent, however long the outage.

A job whose query fails while the database answers the probe (a statement timeout, a
constraint) is an ordinary failure and is retried as usual.
"""

import logging
import threading

from django.db import InterfaceError, OperationalError, connections
from dramatiq.middleware import Middleware

logger = logging.getLogger("jobs.database")

PROBE_INTERVAL_SECONDS = 1.0


def is_connection_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` or anything in its cause chain is a database connection error."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OperationalError | InterfaceError):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def database_answers() -> bool:
    """One query on a new connection (``DB_CONNECT_TIMEOUT`` bounds the wait)."""
    probe = connections.create_connection("default")
    try:
        with probe.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except Exception:
        return False
    finally:
        try:
            probe.close()
        except Exception:  # already broken
            pass


class DatabaseBreaker:
    """Open while the database does not answer; one per process."""

    def __init__(self) -> None:
        self._closed = threading.Event()
        self._closed.set()
        self._lock = threading.Lock()
        self._released = False  # the worker is stopping: let every job through

    @property
    def is_open(self) -> bool:
        return not self._closed.is_set()

    def open(self) -> None:
        with self._lock:
            if not self._closed.is_set():
                return
            self._closed.clear()
        logger.error("Database unreachable: workers pause until it answers")
        threading.Thread(target=self._probe, name="jobsite-db-probe", daemon=True).start()

    def _probe(self) -> None:
        while not self._closed.wait(PROBE_INTERVAL_SECONDS):
            if database_answers():
                logger.warning("Database answers again: workers resume")
                self._closed.set()

    def wait(self) -> None:
        """Block while the breaker is open (not once the worker is stopping)."""
        while not self._closed.wait(PROBE_INTERVAL_SECONDS):
            if self._released:
                return

    def release(self) -> None:
        self._released = True


breaker = DatabaseBreaker()


class DatabaseOutageGate(Middleware):
    """Holds a job at its start while the database is unreachable."""

    def before_process_message(self, broker, message) -> None:
        if breaker.is_open:
            breaker.wait()

    def before_worker_shutdown(self, broker, worker) -> None:
        # Jobs held now run (and fail, un-counted, back to Redis): a stopping worker
        # must not wait for the database.
        breaker.release()


class DatabaseOutageRetries(Middleware):
    """Does not count an attempt that failed because the database was unreachable."""

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        if exception is None or not is_connection_error(exception):
            return
        if not breaker.is_open and database_answers():
            return  # the database is up: the job's own failure
        breaker.open()
        # Retries adds one to "retries" and re-enqueues with a backoff: net nothing spent.
        message.options["retries"] = message.options.get("retries", 0) - 1
        logger.warning("Attempt failed on the database outage: not counted", extra={
            "actor": message.actor_name, "message_id": message.message_id})
