"""Structured logging: one JSON object per line.

Log records carry ids, names of things and counts only. ``extra={...}`` fields are merged
into the object; callers must never pass addresses, names or tokens.

Workers write one line per job attempt (``jobs.middleware.execution.JobExecution``), tens of
thousands a minute: the formatter is built for that (one reused JSON encoder, the
timestamp's seconds formatted once per second), and :class:`BufferedStreamHandler` writes
lines in batches instead of one write (and, under the ``dramatiq`` CLI, one pipe message
the parent process reads and writes out again) per line.
"""

import json
import logging
import multiprocessing.util
import os
import threading
import time

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", (), None)).keys() | {"message", "asctime"}
)
# ``default=str``: an extra that JSON cannot encode (a UUID, a datetime) is written as text.
# One encoder for every line: ``json.dumps(..., default=str)`` builds a new one per call.
_ENCODER = json.JSONEncoder(default=str)


class JsonFormatter(logging.Formatter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._second = -1
        self._second_text = ""

    def _timestamp(self, created: float, msecs: int) -> str:
        """ISO 8601 in UTC with milliseconds, e.g. ``2026-11-29T10:04:05.123+00:00``."""
        second = int(created)
        if second != self._second:
            # Written before the seconds it belongs to; a race between threads at worst
            # recomputes it.
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
            text = self._second_text
        else:
            text = self._second_text
        return f"{text}.{msecs:03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self._timestamp(record.created, int(record.msecs)),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        payload.update({key: value for key, value in record.__dict__.items()
                        if key not in _STANDARD_ATTRS and key[:1] != "_"})
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:  # already formatted (and scrubbed) by a filter
            payload["exc"] = record.exc_text
        return _ENCODER.encode(payload)


class BufferedStreamHandler(logging.StreamHandler):
    """A ``StreamHandler`` that can write its lines in batches.

    It writes each line at once, as ``StreamHandler`` does, until :meth:`start_buffering`
    (Dramatiq worker processes call it at boot, through :func:`buffer_log_handlers`: they
    write a line per job attempt; a scheduler or web process keeps writing at once). Then
    lines below ``flush_level`` (WARNING) wait in memory for at most ``flush_interval``
    seconds (or until ``capacity`` lines are waiting); a line at ``flush_level`` or above
    writes everything waiting, in order, at once. ``flush()`` (called by
    ``logging.shutdown`` and by ``JobExecution`` when a worker stops) writes what is
    waiting. A process killed with SIGKILL loses at most its last interval of INFO lines.
    ``flush_interval`` 0 writes every line at once, as ``StreamHandler`` does.
    """

    def __init__(self, stream=None, flush_interval: float = 0.2, capacity: int = 1000,
                 flush_level: int | str = logging.WARNING) -> None:
        super().__init__(stream)
        self.flush_interval = float(flush_interval)
        self.capacity = int(capacity)
        self.flush_level = logging._checkLevel(flush_level)
        self._lines: list[str] = []
        self._pid: int | None = None
        self._closed = threading.Event()
        self._write_lock = threading.Lock()
        self.buffering = False

    def start_buffering(self) -> None:
        """From now on, write lines below ``flush_level`` in batches."""
        self.buffering = self.flush_interval > 0

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock around emit.
        try:
            line = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if self._pid != os.getpid():
            self._forked()
        self._lines.append(line)
        if (record.levelno >= self.flush_level or len(self._lines) >= self.capacity
                or not self.buffering):
            self._write(record)

    def _forked(self) -> None:
        # First line in this process: lines copied from a parent are the parent's to write.
        self._lines = []
        self._pid = os.getpid()
        self._write_lock = threading.Lock()
        # A multiprocessing child (a dramatiq worker process) ends with os._exit, which
        # skips atexit's logging.shutdown; its exit finalizers still run.
        multiprocessing.util.Finalize(None, self._flush_at_exit, exitpriority=100)
        if self.flush_interval > 0:
            threading.Thread(target=self._flush_periodically, name="jobsite-log-flush",
                             daemon=True).start()

    def _write(self, record: logging.LogRecord | None = None) -> None:
        """Write the waiting lines; the caller holds ``self.lock``."""
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        with self._write_lock:
            self._write_lines(lines, record)

    def _write_lines(self, lines: list[str], record: logging.LogRecord | None) -> None:
        # The caller holds the write lock. Never StreamHandler.flush() here: it takes the
        # handler's lock, which a logging thread may hold while it waits for the write lock.
        try:
            stream = self.stream
            stream.write(self.terminator.join(lines) + self.terminator)
            if hasattr(stream, "flush"):
                stream.flush()
        except Exception:
            self.handleError(record)

    def _flush_at_exit(self) -> None:
        try:
            self.flush()
        except Exception:  # the stream closed first: nothing left that could be written
            pass

    def _flush_periodically(self) -> None:
        pid = os.getpid()
        while not self._closed.wait(self.flush_interval) and pid == os.getpid():
            self.flush()

    def flush(self) -> None:
        # Take the waiting lines under the handler's lock, but write them under the write
        # lock only: a slow reader of the stream (the dramatiq CLI's parent process, busy)
        # then holds up this flush, never the worker threads that log meanwhile. The write
        # lock is taken before the handler's lock is let go, so batches keep their order.
        self.acquire()
        try:
            if self._pid != os.getpid() or not self._lines:
                lines = None
            else:
                lines, self._lines = self._lines, []
                self._write_lock.acquire()
        finally:
            self.release()
        if lines is None:
            return
        try:
            self._write_lines(lines, None)
        finally:
            self._write_lock.release()

    def close(self) -> None:
        self.flush()
        self._closed.set()
        super().close()


def buffer_log_handlers() -> None:
    """Let the root logger's buffered handlers batch their lines (a worker process)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, BufferedStreamHandler):
            handler.start_buffering()


def lean_log_records() -> None:
    """Stop filling in the record attributes no Jobsite formatter prints (a worker process).

    The logging HOWTO's "Optimization" section: without caller information
    (``logging._srcfile = None``) and thread, process and multiprocessing names, a record
    is cheaper to make. :class:`JsonFormatter` prints none of them, and a worker makes a
    record per job attempt. Tracebacks (``exc_info``) are unaffected.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def flush_log_handlers() -> None:
    """Write the lines the root logger's handlers hold (a worker process about to stop)."""
    for handler in logging.getLogger().handlers:
        try:
            handler.flush()
        except Exception:  # a closed stream at shutdown: nothing left to save
            pass
