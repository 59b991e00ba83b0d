"""Fixtures shared by the whole suite: real Redis broker, real Dramatiq workers."""

import io
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dramatiq
import pytest
import redis
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
def search_reference_data():
    """The cities and trade categories marketplace's migration 0005 seeds: a transactional
    test's flush empties their tables, so the tests that need them seed them again."""
    import importlib

    from django.apps import apps

    importlib.import_module("marketplace.migrations.0005_search_index").seed(apps, None)


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


def child_database_url() -> str:
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
           "DATABASE_URL": child_database_url(), "REDIS_URL": settings.REDIS_URL,
           "TEST_REDIS_URL": settings.REDIS_URL,
           "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE, "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return {name: value for name, value in env.items() if value is not None}


class ManagePy:
    """A long-running ``manage.py`` command (or, with ``command``, any command) in its own
    process group, its output in a file."""

    def __init__(self, *args: str, env: dict, name: str = "process",
                 command: list[str] | None = None) -> None:
        from django.conf import settings

        self.log = tempfile.NamedTemporaryFile(prefix=f"jobsite-test-{name}-", suffix=".log",
                                               delete=False)
        self.process = subprocess.Popen(
            command or [sys.executable, "manage.py", *args], cwd=settings.BASE_DIR, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def wait_for_output(self, text: str, *, timeout: float = 60) -> None:
        wait_until(lambda: text in self.output() or self.process.poll() is not None,
                   timeout=timeout)
        if text not in self.output():
            raise AssertionError(f"{text!r} never appeared:\n{self.output()[-3000:]}")

    def signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:  # the whole group is gone already
            pass

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM the whole process group; SIGKILL what is left after ``timeout``. Returns
        once every process of the group is gone (and so are its database sessions)."""
        self.signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 10
        while self._group_alive():
            if time.monotonic() > deadline:
                os.killpg(self.process.pid, signal.SIGKILL)
            time.sleep(0.05)
        self.process.wait()

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True

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


def process_tree(process: ManagePy) -> set[int]:
    """The pids of a process started by :func:`manage_py` and of all its children."""
    import psutil

    try:
        root = psutil.Process(process.process.pid)
        return {root.pid, *(child.pid for child in root.children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def worker_ready(process: ManagePy, *, processes: int = 1, timeout: float = 60) -> None:
    """Wait until ``processes`` worker processes of a ``runworkergroup``/``rundramatiq``
    process have booted (registered in the worker registry, by pid)."""
    import json

    from jobs.monitoring.broker_state import workers_key
    from jobs.redis import get_redis

    def booted() -> bool:
        if process.process.poll() is not None:
            raise AssertionError(f"the worker exited:\n{process.output()[-3000:]}")
        pids = process_tree(process)
        infos = [json.loads(raw) for raw in get_redis().hvals(workers_key())]
        return sum(info["pid"] in pids for info in infos) >= processes

    wait_until(booted, timeout=timeout, interval=0.1)


# --- A real SMTP server ---------------------------------------------------------------


class Recorder:
    """An SMTP server's handler: keeps what it accepts; refuses listed recipients.

    ``data_reply`` is what it answers to a message (a 5xx refuses it); ``on_data`` is
    called with each message it accepts, before it answers (a test's fault to inject).
    """

    def __init__(self, refuse: set[str] = frozenset()) -> None:
        self.messages: list[bytes] = []
        self.refuse = refuse
        self.data_reply = "250 Message accepted"
        self.on_data = None
        self._lock = threading.Lock()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if not self.data_reply.startswith("250"):
            return self.data_reply
        with self._lock:
            self.messages.append(envelope.content)
        if self.on_data is not None:
            self.on_data(envelope.content)
        return self.data_reply

    def message_ids(self) -> list[str]:
        """The Message-ID header of every message accepted, in order."""
        import email

        with self._lock:
            return [email.message_from_bytes(raw)["Message-ID"] for raw in self.messages]

    def subjects(self) -> list[str]:
        import email
        from email.header import decode_header, make_header

        with self._lock:
            return [str(make_header(decode_header(email.message_from_bytes(raw)["Subject"])))
                    for raw in self.messages]


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SmtpServer:
    """A real SMTP server (aiosmtpd) on a loopback port that can go down and come back."""

    def env(self) -> dict[str, str]:
        """What a process needs to send its email here (``config.settings_test``)."""
        return {"TEST_EMAIL_ESP": "smtp", "EMAIL_HOST": "127.0.0.1",
                "EMAIL_PORT": str(self.port), "EMAIL_USE_TLS": "false"}

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
    settings.EMAIL_USE_TLS = False
    yield server
    server.stop()


# --- Faults: a TCP proxy that can cut, and Redis servers of the test's own ------------------


class TcpProxy:
    """Forwards a loopback port to ``target``; :meth:`cut` makes the target unreachable
    (every open connection reset, new ones refused) until :meth:`restore`."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self.restore()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        with self._lock:
            for conn in list(self._connections):
                try:
                    # shutdown() tears the connection down at once; close() alone would
                    # wait for the pipe thread blocked in recv() on it.
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                except OSError:
                    pass
            self._connections.clear()

    close = cut

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._connections |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.close()
                except OSError:
                    pass
            with self._lock:
                self._connections.discard(source)
                self._connections.discard(sink)


class RedisServer:
    """A ``redis-server`` of the test's own on a free port; :meth:`restart` brings it back
    with its data (``keep_data``: saved on shutdown and loaded again) or empty."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.directory), "--dbfilename", "dump.rdb", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port)
        wait_until(lambda: _pings(client), timeout=10)

    def stop(self, *, keep_data: bool = False) -> None:
        if self.process is None:
            return
        client = redis.Redis(port=self.port)
        try:
            client.shutdown(save=keep_data, nosave=not keep_data)
        except redis.ConnectionError:
            pass  # it closes the connection as it goes
        self.process.wait(timeout=10)
        self.process = None
        if not keep_data:
            (self.directory / "dump.rdb").unlink(missing_ok=True)

    def restart(self, *, keep_data: bool) -> None:
        self.stop(keep_data=keep_data)
        self.start()


def _pings(client) -> bool:
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False


@pytest.fixture
def own_redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


# --- S3: a real moto_server ---------------------------------------------------------------


@pytest.fixture(scope="session")
def moto_server_url():
    """A ``moto_server`` process on a loopback port for the whole session (boto3 talks to it
    over HTTP, unchanged)."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1",
         "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(up, timeout=30)
    yield url
    process.terminate()
    process.wait(timeout=10)


class S3:
    """The project's storage pointed at moto_server, with fresh buckets (the archive's
    versioned, as in production)."""

    def __init__(self, url: str, settings) -> None:
        import uuid

        import boto3

        suffix = uuid.uuid4().hex[:10]
        self.url = url
        self.buckets = {"media": f"media-{suffix}", "quarantine": f"quarantine-{suffix}",
                        "archive": f"archive-{suffix}"}
        settings.STORAGE_BACKEND = "s3"
        settings.AWS_S3_ENDPOINT_URL = url
        settings.AWS_S3_REGION_NAME = "ca-central-1"
        settings.AWS_ACCESS_KEY_ID = "testing"
        settings.AWS_SECRET_ACCESS_KEY = "testing"
        settings.AWS_STORAGE_BUCKET_NAME = self.buckets["media"]
        settings.AWS_QUARANTINE_BUCKET_NAME = self.buckets["quarantine"]
        settings.AWS_ARCHIVE_BUCKET_NAME = self.buckets["archive"]
        self.client = boto3.client("s3", endpoint_url=url, region_name="ca-central-1",
                                   aws_access_key_id="testing",
                                   aws_secret_access_key="testing")
        location = {"LocationConstraint": "ca-central-1"}
        for bucket in self.buckets.values():
            self.client.create_bucket(Bucket=bucket, CreateBucketConfiguration=location)
        self.client.put_bucket_versioning(Bucket=self.buckets["archive"],
                                          VersioningConfiguration={"Status": "Enabled"})

    def env(self) -> dict[str, str]:
        """What a process needs to use these buckets."""
        return {"STORAGE_BACKEND": "s3", "AWS_S3_ENDPOINT_URL": self.url,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                "AWS_S3_REGION_NAME": "ca-central-1",
                "AWS_STORAGE_BUCKET_NAME": self.buckets["media"],
                "AWS_QUARANTINE_BUCKET_NAME": self.buckets["quarantine"],
                "AWS_ARCHIVE_BUCKET_NAME": self.buckets["archive"]}

    def keys(self, kind: str, prefix: str = "") -> list[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.buckets[kind], Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


@pytest.fixture
def s3(moto_server_url, settings):
    return S3(moto_server_url, settings)
