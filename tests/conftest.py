"""Fixtures shared by the whole suite: real Redis broker, real Dramatiq workers."""

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import dramatiq
import pytest
from aiosmtpd.controller import Controller
from django.test import Client

from jobs.redis import get_redis


@pytest.fixture
def redis_client():
    """The suite's Redis database, emptied before and after the test."""
    client = get_redis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def broker(redis_client):
    """The project's real Redis broker, with every queue empty."""
    broker = dramatiq.get_broker()
    broker.flush_all()
    yield broker
    broker.flush_all()


@pytest.fixture
def worker(broker):
    """A real Dramatiq worker consuming every queue, in this process's threads.

    Tests that use it need ``transactional_db`` so the worker sees committed rows.
    """
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=50)
    worker.start()
    yield worker
    worker.stop()
    # Dramatiq never takes back the middleware a Worker adds to its broker: a stopped worker
    # would start consumers for queues declared later (e.g. by a test importing a tasks
    # module) and fetch their messages without ever running them.
    broker.middleware[:] = [
        m for m in broker.middleware if getattr(m, "worker", None) is not worker
    ]


def drain(broker, worker, *, timeout_ms: int = 20_000) -> None:
    """Wait until every declared queue is empty and the worker is idle.

    Repeats until one pass finds nothing left, so work that a job enqueues on a queue
    already joined (a digest fanning out emails) is waited for too.
    """
    deadline = time.monotonic() + timeout_ms / 1000
    while True:
        queues = sorted(broker.get_declared_queues())
        for queue_name in queues:
            broker.join(queue_name, timeout=timeout_ms)
        worker.join()
        if all(broker.do_qsize(queue_name) == 0 for queue_name in queues):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"queues not drained within {timeout_ms} ms")


def wait_until(predicate, *, timeout: float = 10.0, interval: float = 0.05) -> None:
    """Wait for something a worker's consumer thread does after ``drain`` returns.

    ``drain`` covers the work queue; a message for an unknown actor is rejected by the
    consumer thread itself, which ``Worker.join`` does not wait for.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@pytest.fixture
def staff_client(db, django_user_model) -> Client:
    user = django_user_model.objects.create_superuser("staff@example.test", "pw-staff-123")
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def stderr_output():
    """What the project's configured stderr handler (settings.LOGGING) writes: the log
    lines as they leave the process, after the handler's scrubbing filters."""
    [handler] = [h for h in logging.getLogger().handlers if h.name == "stderr"]

    class Written(io.StringIO):
        # The handler writes INFO lines in batches: what it wrote once it has flushed.
        def getvalue(self) -> str:
            handler.flush()
            return super().getvalue()

    buffer = Written()
    previous = handler.setStream(buffer)
    yield buffer
    handler.setStream(previous)


# --- Real processes ------------------------------------------------------------------------


def test_database_url() -> str:
    """The URL of the test database, for processes the tests start."""
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] or ""
    if db.get("PASSWORD"):
        auth += f":{db['PASSWORD']}"
    return (f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/"
            f"{db['NAME']}")


def child_env(*, settings_module: str = "config.settings_test", **extra: str) -> dict:
    """The environment of a ``manage.py`` process on the test database, Redis database
    and namespace. ``config.settings`` (what ``make run`` uses) gets the same through
    ``DATABASE_URL``/``REDIS_URL``; ``config.settings_test`` through ``TEST_REDIS_URL``."""
    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings_module, "DEBUG": "true",
           "DATABASE_URL": test_database_url(), "REDIS_URL": settings.REDIS_URL,
           "TEST_REDIS_URL": settings.REDIS_URL,
           "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE, "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


class ManagePy:
    """A long-running ``manage.py`` command in its own process group, its output in a file."""

    def __init__(self, *args: str, env: dict, name: str = "process") -> None:
        from django.conf import settings

        self.log = tempfile.NamedTemporaryFile(prefix=f"jobsite-test-{name}-", suffix=".log",
                                               delete=False)
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_for_output(self, text: str, *, timeout: float = 60) -> None:
        wait_until(lambda: text in self.output() or self.process.poll() is not None,
                   timeout=timeout)
        if text not in self.output():
            raise AssertionError(f"{text!r} never appeared:\n{self.output()[-3000:]}")

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signum)

    def stop(self, timeout: float = 20) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.process.wait()

    def close(self) -> None:
        self.stop()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def manage_py():
    """Start ``manage.py`` commands as real processes; all are stopped after the test."""
    started: list[ManagePy] = []

    def start(*args: str, env: dict | None = None, name: str = "process") -> ManagePy:
        process = ManagePy(*args, env=env or child_env(), name=name)
        started.append(process)
        return process

    yield start
    for process in started:
        process.close()


def worker_ready(process: ManagePy, *, processes: int = 1, timeout: float = 60) -> None:
    """Wait until a ``runworkergroup``/``rundramatiq`` process's ``processes`` worker
    processes have booted (registered in the worker registry)."""
    import json

    from jobs.monitoring.broker_state import workers_key
    from jobs.redis import get_redis

    started = process.started_at

    def booted() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{process.output()[-3000:]}")
        infos = [json.loads(raw) for raw in get_redis().hvals(workers_key())]
        return sum(info["started"] >= int(started) for info in infos) >= processes

    wait_until(booted, timeout=timeout, interval=0.1)


# --- A real SMTP server ---------------------------------------------------------------


class Recorder:
    """An SMTP server's handler: keeps what it receives; refuses listed recipients."""

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.messages: list[bytes] = []
        self.refuse = refuse

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 Message accepted"


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port that can go down and come back."""

    def __init__(self) -> None:
        self.handler = Recorder(refuse={"refused@example.test"})
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp_server(settings):
    """The server running, and Django's SMTP backend pointed at it."""
    server = SmtpServer()
    server.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
    yield server
    server.stop()
