"""Run benchmark workloads against real worker subprocesses; compute the figures.

Each workload enqueues through the code production uses, on workers started exactly as
production starts them (``manage.py runworkergroup <group>``), against the configured
Redis and PostgreSQL. The bare-Dramatiq baseline runs the same no-op on a plain
``dramatiq`` worker with no middleware, with the same processes and threads.

Figures per workload: wall time from the first enqueue to the last completion, jobs per
minute over that time, success rate, wait (enqueue → start) and run time percentiles,
and the peak resident memory of the worker process tree while the workload ran.
"""

import contextlib
import http.client
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import django
import dramatiq
import psutil
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from dramatiq import Message
from dramatiq.encoder import JSONEncoder

from bench import bare
from bench import payments_workload as payments
from bench.timings import timings_key
from jobs.ratelimit import rate_limit_reset
from jobs.redis import get_redis
from jobs.redis import namespace as current_namespace

READY_TIMEOUT_S = 90
POLL_S = 0.05
EMAIL_BATCH = 100
EMAILS_PER_USER = 40  # under the 50 per hour limit
WARMUP_JOBS = 60


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; ``None`` for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Result:
    workload: str
    jobs: int
    completed: int
    succeeded: int
    wall_s: float
    enqueue_s: float
    wait_ms: list[float] = field(repr=False)
    run_ms: list[float] = field(repr=False)
    peak_rss_mb: float
    seed_target_per_min: int | None
    worker: str
    outcomes: dict[str, int] = field(default_factory=dict)  # status → jobs, where known
    cpu_s: dict[str, float] = field(default_factory=dict)  # process kind → CPU seconds
    extra: dict[str, Any] = field(default_factory=dict)  # a workload's own figures

    @property
    def jobs_per_min(self) -> float:
        return self.succeeded / self.wall_s * 60 if self.wall_s > 0 else 0.0

    @property
    def success_rate(self) -> float:
        return self.succeeded / self.jobs if self.jobs else 0.0

    def as_dict(self) -> dict[str, Any]:
        def pcts(values):
            return {f"p{p}": _round(percentile(values, p)) for p in (50, 95, 99)}

        target = self.seed_target_per_min
        return {
            "workload": self.workload, "worker": self.worker, "jobs": self.jobs,
            "completed": self.completed, "succeeded": self.succeeded,
            "wall_s": round(self.wall_s, 3), "enqueue_s": round(self.enqueue_s, 3),
            "jobs_per_min": round(self.jobs_per_min, 1), "seed_target_per_min": target,
            "ratio_to_target": round(self.jobs_per_min / target, 2) if target else None,
            "success_rate": round(self.success_rate, 4),
            "wait_ms": pcts(self.wait_ms), "run_ms": pcts(self.run_ms),
            "peak_worker_rss_mb": round(self.peak_rss_mb, 1),
            "outcomes": self.outcomes,
            "cpu_s": {kind: round(s, 3) for kind, s in self.cpu_s.items()},
            # CPU milliseconds per job = CPU seconds per 1,000 jobs.
            "cpu_ms_per_job": {kind: round(s / self.jobs * 1000, 3) if self.jobs else None
                               for kind, s in self.cpu_s.items()},
            **self.extra,
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


class WorkerProcesses:
    """A worker command run as its own process group, with a memory sampler."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log = tempfile.NamedTemporaryFile(prefix=f"benchjobs-{name}-", suffix=".log",
                                               delete=False)
        self.process = subprocess.Popen(
            command, cwd=settings.BASE_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.peak_rss = 0
        self._sampling = True
        self._sampler = threading.Thread(target=self._sample, daemon=True)
        self._sampler.start()

    def _tree_rss(self) -> int:
        try:
            root = psutil.Process(self.process.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _sample(self) -> None:
        while self._sampling:
            self.peak_rss = max(self.peak_rss, self._tree_rss())
            time.sleep(0.2)

    def reset_peak(self) -> None:
        self.peak_rss = self._tree_rss()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(Path(self.log.name).read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, redis_client, namespace: str, processes: int, since_ms: int,
                   others: set[bytes] = frozenset()) -> None:
        """Wait until ``processes`` worker processes have polled the broker (``others``:
        the heartbeats of workers already running in the namespace, not counted)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        key = f"{namespace}:__heartbeats__"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} worker exited:\n{self.log_tail()}")
            beats = redis_client.zrangebyscore(key, since_ms, "+inf")
            if len(set(beats) - others) >= processes:
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} worker not ready in {READY_TIMEOUT_S} s:\n"
                           f"{self.log_tail()}")

    def stop(self) -> None:
        self._sampling = False
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
        os.unlink(self.log.name)


def database_url() -> str:
    """The URL of the database this process uses (the test database, under pytest)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        auth += ":" + quote(db["PASSWORD"], safe="")
    host = quote(db["HOST"] or "", safe="")
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{auth}@{host}{port}/{db['NAME']}"


def worker_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
        "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE, "EMAIL_ESP": "test",
        "DJANGO_SETTINGS_MODULE": "config.settings_bench",
        "PYTHONUNBUFFERED": "1", **extra,
    })
    return env


# --- Workloads ---------------------------------------------------------------------------


@dataclass
class Workload:
    name: str
    worker: str  # a production worker group ("high", "push") or "bare"
    seed_target_per_min: int | None
    description: str
    prepare: Callable[[int, str], Any]
    enqueue: Callable[[Any], None]
    progress: Callable[[Any], int]
    # → (succeeded, wait ms list, run ms list, first start, last end) (unix times)
    collect: Callable[[Any], tuple[int, list[float], list[float], float, float]]
    cleanup: Callable[[Any], None]
    # Worker groups started beside ``worker`` for this workload (its side effects' queues).
    extra_workers: tuple[str, ...] = ()
    # A gunicorn serving the project (config.wsgi), for workloads that arrive over HTTP:
    # the state gets it as ``state["web"]``.
    web: bool = False
    poll_s: float = POLL_S


def _email_prepare(count: int, run_id: str) -> dict[str, Any]:
    from marketplace.models import User

    users = [
        User(email=f"bench-{run_id}-{i}@bench.jobsite.invalid", first_name="Bench",
             last_name=str(i), preferred_language="en" if i % 2 == 0 else "fr", password="!")
        for i in range(math.ceil(count / EMAILS_PER_USER))
    ]
    User.objects.bulk_create(users, batch_size=1000)
    ids = list(User.objects.filter(email__startswith=f"bench-{run_id}-")
               .order_by("pk").values_list("pk", flat=True))
    return {"count": count, "user_ids": ids}


# One context per kind: every kind in both languages is exercised.
_EMAIL_CONTEXTS: list[tuple[str, dict[str, Any]]] = [
    ("welcome", {}),
    ("email_verification", {}),
    ("password_reset", {}),
    ("order_status", {"order_id": 42, "order_title": "Fix the kitchen sink",
                      "status": "in_progress"}),
    ("payment_confirmation", {"order_id": 42, "order_title": "Fix the kitchen sink",
                              "amount_cents": 11300, "currency": "CAD"}),
    ("review_reminder", {"order_id": 42, "order_title": "Fix the kitchen sink",
                         "contractor_name": "Pro Plumbing"}),
]


def _email_enqueue(state: dict[str, Any]) -> None:
    from notifications.services.sending import send_email

    user_ids = state["user_ids"]
    count = state["count"]
    for start in range(0, count, EMAIL_BATCH):
        with transaction.atomic():
            for i in range(start, min(start + EMAIL_BATCH, count)):
                kind, context = _EMAIL_CONTEXTS[i % len(_EMAIL_CONTEXTS)]
                send_email(kind=kind, user_id=user_ids[i // EMAILS_PER_USER], context=context)


def _email_rows(state: dict[str, Any]):
    from notifications.models import EmailLog

    return EmailLog.objects.filter(user_id__in=state["user_ids"])


def _email_progress(state: dict[str, Any]) -> int:
    from notifications.models import EmailStatus

    # Done = a final status (queued and sending rows are still in flight).
    return _email_rows(state).exclude(
        status__in=[EmailStatus.QUEUED, EmailStatus.SENDING]).count()


def _email_collect(state: dict[str, Any]):
    from notifications.models import EmailStatus

    rows = list(_email_rows(state).values_list("status", "created_at", "last_attempt_at",
                                               "sent_at", "last_error"))
    state["outcomes"] = dict(Counter(f"{r[0]} {r[4]}".strip() for r in rows))
    sent = [r for r in rows if r[0] == EmailStatus.SENT]
    waits = [(r[2] - r[1]).total_seconds() * 1000 for r in sent]
    runs = [(r[3] - r[2]).total_seconds() * 1000 for r in sent]
    last_end = max((r[3].timestamp() for r in sent), default=0.0)
    first_start = min((r[2].timestamp() for r in sent), default=0.0)
    return len(sent), waits, runs, first_start, last_end


def _email_cleanup(state: dict[str, Any]) -> None:
    from marketplace.models import User
    from notifications.services.sending import EMAIL_RATE_LIMIT

    _email_rows(state).delete()
    User.objects.filter(pk__in=state["user_ids"]).delete()
    rate_limit_reset(EMAIL_RATE_LIMIT, *state["user_ids"])


def _noop_prepare(count: int, run_id: str) -> dict[str, Any]:
    return {"count": count, "run_id": run_id}


def _jobsite_noop_enqueue(state: dict[str, Any]) -> None:
    from bench.tasks import bench_noop

    for _ in range(state["count"]):
        bench_noop.send(state["run_id"], time.time())


def _bare_noop_enqueue(state: dict[str, Any]) -> None:
    # What RedisBroker.enqueue does (it has no middleware hooks to run here), but encoded
    # with Dramatiq's plain JSON: this process's global encoder is Jobsite's encrypting
    # one, which the bare worker does not have.
    broker = bare.make_broker(settings.REDIS_URL, bare_namespace())
    encoder = JSONEncoder()
    try:
        for _ in range(state["count"]):
            redis_id = str(uuid.uuid4())
            message = Message(queue_name=bare.QUEUE, actor_name=bare.ACTOR_NAME,
                              args=(state["run_id"], time.time()), kwargs={},
                              options={"redis_message_id": redis_id})
            broker.do_enqueue(bare.QUEUE, redis_id, encoder.encode(message.asdict()))
    finally:
        broker.close()


def _noop_progress(state: dict[str, Any]) -> int:
    return get_redis().llen(timings_key(current_namespace(), state["run_id"]))


def _noop_collect(state: dict[str, Any]):
    waits, runs, last_end, first_start = [], [], 0.0, math.inf
    for raw in get_redis().lrange(timings_key(current_namespace(), state["run_id"]), 0, -1):
        wait_ms, run_ms, ended = (float(x) for x in raw.decode().split(","))
        waits.append(wait_ms)
        runs.append(run_ms)
        last_end = max(last_end, ended)
        first_start = min(first_start, ended - run_ms / 1000)
    return len(waits), waits, runs, (0.0 if first_start == math.inf else first_start), last_end


def _noop_cleanup(state: dict[str, Any]) -> None:
    get_redis().delete(timings_key(current_namespace(), state["run_id"]))


# --- Push: individual pushes and a broadcast, against the local OneSignal stand-in ----------

PUSHES_PER_USER = 18  # under the 20 per hour limit
PUSH_ZONES = ("America/Vancouver", "America/Toronto", "America/Halifax")
_PUSH_FINAL_EXCLUDE = ("queued", "sending")


def _push_users(count: int, run_id: str, *, prefix: str = "bench-push") -> list[int]:
    """``count`` bench users (``<prefix>-<run id>-<n>@bench.jobsite.invalid``), each with
    one active device and push preferences that let every kind through at any hour
    (promotional consent, no quiet hours): the workloads measure sending, not the clock of
    the day they run."""
    import datetime

    from jobs.encryption import payload_fernet
    from marketplace.models import User
    from notifications.models import Device, Platform, PushPreference
    from notifications.services.devices import subscription_id_hash

    prefix = f"{prefix}-{run_id}-"
    User.objects.bulk_create(
        [User(email=f"{prefix}{i}@bench.jobsite.invalid", first_name=f"Bench{i}",
              last_name="Push", preferred_language="en" if i % 2 == 0 else "fr",
              time_zone=PUSH_ZONES[i % len(PUSH_ZONES)], password="!")
         for i in range(count)], batch_size=5000)
    ids = list(User.objects.filter(email__startswith=prefix).order_by("pk")
               .values_list("pk", flat=True))
    fernet = payload_fernet()
    platforms = Platform.values
    devices = []
    for n, user_id in enumerate(ids):
        subscription = f"{run_id}-{uuid.uuid4()}"
        devices.append(Device(user_id=user_id, platform=platforms[n % len(platforms)],
                              subscription_id_hash=subscription_id_hash(subscription),
                              subscription_id_encrypted=fernet.encrypt(
                                  subscription.encode()).decode()))
    Device.objects.bulk_create(devices, batch_size=5000)
    midnight = datetime.time(0, 0)
    PushPreference.objects.bulk_create(
        [PushPreference(user_id=user_id, promotional_consent=True,
                        promotional_consent_source="benchmark", quiet_start=midnight,
                        quiet_end=midnight) for user_id in ids], batch_size=5000)
    return ids


def _push_rows_delete(user_ids: list[int]) -> None:
    """Delete everything push made for ``user_ids`` (rows, in-app twins, devices,
    preferences, rate-limit counters), in set-based SQL."""
    from notifications.models import Device, Notification, PushLog, PushPreference
    from notifications.services.push import PUSH_RATE_LIMIT

    with connection.cursor() as cursor:
        for model in (PushLog, Notification, Device, PushPreference):
            cursor.execute(f"DELETE FROM {model._meta.db_table} WHERE user_id = ANY(%s)",
                           [user_ids])
    rate_limit_reset(PUSH_RATE_LIMIT, *user_ids)


def _push_users_delete(run_id: str) -> None:
    """Delete the run's users and everything push made for them, in set-based SQL (the ORM
    would load every row of a 200,000-user broadcast to cascade it)."""
    from marketplace.models import User

    pattern = f"bench-push-{run_id}-%"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id FROM {User._meta.db_table} WHERE email LIKE %s", [pattern])
        ids = [row[0] for row in cursor.fetchall()]
    _push_rows_delete(ids)
    try:  # nothing else refers to bench users; if something does, the ORM cascades it
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"DELETE FROM {User._meta.db_table} WHERE email LIKE %s", [pattern])
    except IntegrityError:
        User.objects.filter(email__startswith=f"bench-push-{run_id}-").delete()


def _push_prepare(count: int, run_id: str) -> dict[str, Any]:
    ids = _push_users(math.ceil(count / PUSHES_PER_USER), run_id)
    return {"count": count, "run_id": run_id, "user_ids": ids}


def _push_enqueue(state: dict[str, Any]) -> None:
    from notifications.push_kinds import PUSH_KINDS
    from notifications.services.push import send_push

    kinds = list(PUSH_KINDS.values())  # every kind, in both languages
    user_ids = state["user_ids"]
    count = state["count"]
    for start in range(0, count, EMAIL_BATCH):
        with transaction.atomic():
            for i in range(start, min(start + EMAIL_BATCH, count)):
                spec = kinds[i % len(kinds)]
                send_push(kind=spec.kind, user_id=user_ids[i // PUSHES_PER_USER],
                          context=spec.sample_context)


def _push_rows(state: dict[str, Any]):
    from notifications.models import PushLog

    return PushLog.objects.filter(user_id__in=state["user_ids"], campaign__isnull=True)


def _push_progress(state: dict[str, Any]) -> int:
    return _push_rows(state).exclude(status__in=_PUSH_FINAL_EXCLUDE).count()


def _push_collect(state: dict[str, Any]):
    from notifications.models import PushStatus

    rows = list(_push_rows(state).values_list("status", "created_at", "last_attempt_at",
                                              "sent_at", "reason"))
    state["outcomes"] = dict(Counter(f"{r[0]} {r[4]}".strip() for r in rows))
    sent = [r for r in rows if r[0] == PushStatus.SENT]
    waits = [(r[2] - r[1]).total_seconds() * 1000 for r in sent]
    runs = [(r[3] - r[2]).total_seconds() * 1000 for r in sent]
    first_start = min((r[2].timestamp() for r in sent), default=0.0)
    last_end = max((r[3].timestamp() for r in sent), default=0.0)
    return len(sent), waits, runs, first_start, last_end


def _push_cleanup(state: dict[str, Any]) -> None:
    _push_users_delete(state["run_id"])


def _broadcast_prepare(count: int, run_id: str) -> dict[str, Any]:
    from notifications.models import PushCampaign, PushKind
    from notifications.push_kinds import PUSH_KINDS

    _push_users(count, run_id)
    campaign = PushCampaign.objects.create(
        name=f"Benchmark broadcast {run_id}", kind=PushKind.PROMOTIONAL,
        context=PUSH_KINDS[PushKind.PROMOTIONAL].sample_context)
    return {"count": count, "run_id": run_id, "campaign_id": campaign.pk}


def _broadcast_enqueue(state: dict[str, Any]) -> None:
    from notifications.models import PushCampaign
    from notifications.services.campaigns import push_campaign_start

    push_campaign_start(campaign=PushCampaign.objects.get(pk=state["campaign_id"]))


def _broadcast_progress(state: dict[str, Any]) -> int:
    """Recipients of batches sent so far (cheap: one row per 2,000 users); the whole count
    once the campaign is done (whatever became of each user, collect says)."""
    from django.db.models import Sum

    from notifications.models import PushBatch, PushCampaign, PushCampaignStatus

    if PushCampaign.objects.filter(pk=state["campaign_id"],
                                   status=PushCampaignStatus.DONE).exists():
        return state["count"]
    sent = (PushBatch.objects.filter(campaign_id=state["campaign_id"])
            .exclude(status__in=_PUSH_FINAL_EXCLUDE).aggregate(n=Sum("size"))["n"] or 0)
    return min(sent, state["count"] - 1)


def _broadcast_collect(state: dict[str, Any]):
    from notifications.models import PushBatch, PushCampaign, PushLog, PushStatus

    campaign = PushCampaign.objects.get(pk=state["campaign_id"])
    rows = list(PushLog.objects.filter(campaign=campaign,
                                       user__email__startswith=f"bench-push-{state['run_id']}-")
                .values_list("status", "created_at", "sent_at", "reason"))
    outcomes = Counter(f"{r[0]} {r[3]}".strip() for r in rows)
    batches = list(PushBatch.objects.filter(campaign=campaign).values_list("attempts",
                                                                          flat=True))
    outcomes["(onesignal batches)"] = len(batches)
    outcomes["(batch attempts)"] = sum(batches)
    state["outcomes"] = dict(outcomes)
    sent = [r for r in rows if r[0] == PushStatus.SENT]
    started = campaign.started_at
    waits = [(r[1] - started).total_seconds() * 1000 for r in sent]  # start → checked
    runs = [(r[2] - r[1]).total_seconds() * 1000 for r in sent]  # checked → sent
    first_start = started.timestamp() if started else 0.0
    last_end = max((r[2].timestamp() for r in sent), default=0.0)
    return len(sent), waits, runs, first_start, last_end


def _broadcast_cleanup(state: dict[str, Any]) -> None:
    from notifications.models import PushCampaign

    _push_users_delete(state["run_id"])
    PushCampaign.objects.filter(pk=state["campaign_id"]).delete()


WORKLOADS: dict[str, Workload] = {
    "email": Workload("email", "high", 1000,
                      "send_email → send_email_task: 6 kinds × EN/FR, templates, anymail test",
                      _email_prepare, _email_enqueue, _email_progress, _email_collect,
                      _email_cleanup),
    "push": Workload("push", "push", 500,
                     "send_push → send_push_task: 5 kinds × EN/FR, one device each, "
                     "OneSignal API stand-in", _push_prepare, _push_enqueue, _push_progress,
                     _push_collect, _push_cleanup),
    "broadcast": Workload("broadcast", "push", None,
                          "a promotional campaign: every user checked, batches of "
                          "PUSH_BATCH_SIZE per OneSignal request (jobs = recipients)",
                          _broadcast_prepare, _broadcast_enqueue, _broadcast_progress,
                          _broadcast_collect, _broadcast_cleanup),
    "payments": Workload("payments", "high", 100,
                         "signed payment_intent.succeeded webhooks posted to gunicorn → "
                         "stripe_event_process → payment succeeded, confirmation email "
                         "(anymail test) and push (OneSignal stand-in)",
                         payments.prepare, payments.enqueue, payments.progress,
                         payments.collect, payments.cleanup, extra_workers=("push",),
                         web=True, poll_s=payments.POLL_S),
    "noop": Workload("noop", "high", None, "no-op actor through the Jobsite middleware stack",
                     _noop_prepare, _jobsite_noop_enqueue, _noop_progress, _noop_collect,
                     _noop_cleanup),
    "bare": Workload("bare", "bare", None, "the same no-op on bare Dramatiq (no middleware)",
                     _noop_prepare, _bare_noop_enqueue, _noop_progress, _noop_collect,
                     _noop_cleanup),
}


def bare_namespace() -> str:
    return f"{settings.DRAMATIQ_NAMESPACE}-bench-bare"


# --- Running -----------------------------------------------------------------------------


class OneSignalStandin:
    """``bench.onesignal_standin`` in its own process: the push workers' OneSignal."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.onesignal_standin"], cwd=settings.BASE_DIR,
            stdout=subprocess.PIPE, text=True, start_new_session=True)
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError("The OneSignal stand-in did not start.")
        self.url = f"http://127.0.0.1:{int(line)}"

    def worker_env(self) -> dict[str, str]:
        return {"PUSH_PROVIDER": "onesignal", "ONESIGNAL_API_URL": self.url,
                "ONESIGNAL_APP_ID": "00000000-0000-4000-8000-0000000be7c4",
                "ONESIGNAL_API_KEY": "bench-only-key"}

    def stats(self) -> dict[str, int]:
        import requests

        return requests.get(f"{self.url}/stats", timeout=5).json()

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=10)
        self.process.stdout.close()


@dataclass
class BenchConfig:
    workloads: list[str]
    counts: dict[str, int]
    processes: int
    threads: int
    timeout_s: float
    mode: str = "live"  # "live" or "backlog" (see run_workload)
    onesignal: OneSignalStandin | None = None  # set by run() for push workloads
    # Set by workload_services() while a workload that needs them runs.
    web: "WebServer | None" = None
    extra_workers: list[WorkerProcesses] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class WebServer(WorkerProcesses):
    """``gunicorn config.wsgi`` on a loopback port, as the Procfile runs it (its access
    log through the scrubbing logger), with ``processes`` workers of ``threads`` threads:
    gunicorn's gthread worker, which keeps connections alive (its sync worker closes
    each one). Its ``STRIPE_WEBHOOK_SECRET`` is a fresh one, :attr:`webhook_secret`."""

    def __init__(self, processes: int, threads: int, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.webhook_secret = payments.webhook_secret()
        super().__init__("web", [
            sys.executable, "-m", "gunicorn", "config.wsgi",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(processes),
            "--threads", str(threads), "--access-logfile", "-",
            "--logger-class", "config.access_log.ScrubbingLogger",
        ], {**env, "STRIPE_WEBHOOK_SECRET": self.webhook_secret})
        try:
            self._wait_up()
        except Exception:
            self.stop()
            raise

    def _wait_up(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{self.log_tail()}")
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
            try:
                conn.request("GET", "/health/live")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn not up in {READY_TIMEOUT_S} s:\n{self.log_tail()}")


@contextlib.contextmanager
def workload_services(workload: Workload, config: BenchConfig):
    """Run what ``workload`` needs beside its worker group (its extra worker groups, the
    web server) while the block runs; on ``config``."""
    try:
        for kind in workload.extra_workers:
            config.extra_workers.append(start_workers(kind, config))
        if workload.web:
            env = worker_env(**(config.onesignal.worker_env() if config.onesignal else {}))
            config.web = WebServer(config.processes, payments.WEB_THREADS, env)
        yield
    finally:
        if config.web is not None:
            config.web.stop()
            config.web = None
        for workers in config.extra_workers:
            workers.stop()
        config.extra_workers = []


def process_cpu_s(proc: psutil.Process) -> float:
    """CPU seconds (user + system) ``proc`` has used so far."""
    times = proc.cpu_times()
    return times.user + times.system


def process_tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by the live processes of ``pid``'s tree."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            total += process_cpu_s(proc)
        except psutil.NoSuchProcess:
            pass
    return total


class PostgresBackendsCpu:
    """CPU seconds of the PostgreSQL backends of this database (but this connection's own:
    the benchmark's polling), sampled, since they come and go; a backend's time between
    its last sample and its exit is lost. Backends are told apart by pid and start time:
    a busy machine reuses pids within minutes."""

    SQL = ("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
           "AND pid <> pg_backend_pid()")

    def __init__(self) -> None:
        # (pid, started) → (CPU at the first sample, at the last)
        self.backends: dict[tuple[int, float], tuple[float, float]] = {}
        self.sample(first=True)

    def sample(self, first: bool = False) -> None:
        with connection.cursor() as cursor:
            cursor.execute(self.SQL)
            pids = [row[0] for row in cursor.fetchall()]
        for pid in pids:
            try:
                proc = psutil.Process(pid)
                key, used = (pid, proc.create_time()), process_cpu_s(proc)
            except psutil.Error:
                continue
            start = self.backends.get(key, (used if first else 0.0, 0.0))[0]
            self.backends[key] = (start, used)

    def seconds(self) -> float:
        return sum(last - start for start, last in self.backends.values())


def redis_cpu_s() -> float:
    """CPU seconds of the Redis server (all of it: its other users count too)."""
    info = get_redis().info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class CpuMeter:
    """CPU seconds by process kind over one workload: ``workers`` (the worker groups'
    process trees), ``web`` (gunicorn's), ``bench`` (this process: the enqueuer or HTTP
    client, and its polling), ``postgres`` (:class:`PostgresBackendsCpu`) and ``redis``
    (the server); ``workers <group>`` splits ``workers`` by group. Worker groups are
    measured from when they are added."""

    SAMPLE_EVERY_S = 0.5

    def __init__(self, web: WorkerProcesses | None = None) -> None:
        self.trees: list[tuple[str, int, float]] = []  # kind, pid, CPU at start
        if web is not None:
            self.add("web", web)
        self.own = psutil.Process()
        self.own_start = process_cpu_s(self.own)
        self.redis_start = redis_cpu_s()
        self.postgres = PostgresBackendsCpu()
        self.sampled = time.monotonic()

    def add(self, kind: str, workers: WorkerProcesses) -> None:
        self.trees.append((kind, workers.process.pid, process_tree_cpu_s(workers.process.pid)))

    def sample(self) -> None:
        if time.monotonic() - self.sampled >= self.SAMPLE_EVERY_S:
            self.postgres.sample()
            self.sampled = time.monotonic()

    def result(self) -> dict[str, float]:
        self.postgres.sample()
        used: dict[str, float] = {"workers": 0.0}
        for kind, pid, start in self.trees:
            seconds = process_tree_cpu_s(pid) - start
            used[kind] = used.get(kind, 0.0) + seconds
            if kind.startswith("workers "):
                used["workers"] += seconds
        used.update(bench=process_cpu_s(self.own) - self.own_start,
                    postgres=self.postgres.seconds(), redis=redis_cpu_s() - self.redis_start)
        return used


def start_workers(kind: str, config: BenchConfig) -> WorkerProcesses:
    since_ms = int(time.time() * 1000)
    procs, threads = str(config.processes), str(config.threads)
    if kind == "bare":
        namespace = bare_namespace()
        command = [sys.executable, "-m", "dramatiq", "bench.bare_worker",
                   "--processes", procs, "--threads", threads, "--queues", bare.QUEUE]
        env = worker_env(BENCH_REDIS_URL=settings.REDIS_URL, BENCH_NAMESPACE=namespace,
                         BENCH_TIMINGS_NAMESPACE=settings.DRAMATIQ_NAMESPACE)
    else:
        namespace = settings.DRAMATIQ_NAMESPACE
        command = [sys.executable, "manage.py", "runworkergroup", kind,
                   "--processes", procs, "--threads", threads]
        env = worker_env(**(config.onesignal.worker_env() if config.onesignal else {}))
    # Another group may run in the namespace already (a workload's extra workers).
    others = set(get_redis().zrange(f"{namespace}:__heartbeats__", 0, -1))
    workers = WorkerProcesses(kind, command, env)
    try:
        workers.wait_ready(get_redis(), namespace, config.processes, since_ms, others)
    except Exception:
        workers.stop()
        raise
    return workers


def run_workload(workload: Workload, count: int, config: BenchConfig, *,
                 workers: WorkerProcesses | None = None) -> Result:
    """Run one workload. Live mode: ``workers`` are running while it is enqueued, and
    the wall time runs from the first enqueue to the last completion. Backlog mode: the
    whole workload is enqueued first, then workers start, and the wall time runs from
    the first job's start to the last completion (the workers' own throughput)."""
    run_id = uuid.uuid4().hex[:12]
    state = workload.prepare(count, run_id)
    if workload.web:
        state["web"] = config.web
    own_workers = workers is None
    try:
        if workers is not None:
            workers.reset_peak()
        requests_before = config.onesignal.stats() if config.onesignal else None
        meter = CpuMeter(config.web)
        for extra in config.extra_workers:
            meter.add(f"workers {extra.name}", extra)
        if workers is not None:
            meter.add(f"workers {workers.name}", workers)
        started = time.time()
        workload.enqueue(state)
        enqueued = time.time()
        if own_workers:
            workers = start_workers(workload.worker, config)
            # From ready: its start-up is not the workload's.
            meter.add(f"workers {workers.name}", workers)
        deadline = time.monotonic() + config.timeout_s
        while workload.progress(state) < count and time.monotonic() < deadline:
            for proc in (workers, config.web, *config.extra_workers):
                if proc is not None and proc.process.poll() is not None:
                    raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
            meter.sample()
            time.sleep(workload.poll_s)
        cpu_s = meter.result()
        completed = workload.progress(state)
        succeeded, waits, runs, first_start, last_end = workload.collect(state)
        if requests_before is not None and "push" in (workload.worker,
                                                      *workload.extra_workers):
            after = config.onesignal.stats()
            state.setdefault("outcomes", {}).update({
                f"(onesignal {name})": after[name] - requests_before[name]
                for name in ("requests", "recipients", "rejected")})
        end = last_end if completed >= count and last_end else time.time()
        begin = first_start if own_workers and first_start else started
        return Result(workload.name, count, completed, succeeded, max(end - begin, 1e-6),
                      enqueued - started, waits, runs, workers.peak_rss / 2**20,
                      workload.seed_target_per_min, workers.name,
                      outcomes=state.get("outcomes", {}), cpu_s=cpu_s,
                      extra=state.get("extra", {}))
    finally:
        if own_workers and workers is not None:
            workers.stop()
        workload.cleanup(state)


def run(config: BenchConfig, progress: Callable[[str], None] = lambda _: None) -> list[Result]:
    """Run the configured workloads; results in the order asked for."""
    if any("push" in (WORKLOADS[name].worker, *WORKLOADS[name].extra_workers)
           for name in config.workloads):
        config.onesignal = OneSignalStandin()
        try:
            return _run(config, progress)
        finally:
            config.onesignal.stop()
            config.onesignal = None
    return _run(config, progress)


def _run(config: BenchConfig, progress: Callable[[str], None]) -> list[Result]:
    results: dict[str, Result] = {}
    if config.mode == "backlog":
        for name in config.workloads:
            progress(f"{name}: enqueueing {config.counts[name]} jobs, then starting workers "
                     f"({config.processes} processes × {config.threads} threads)")
            with workload_services(WORKLOADS[name], config):
                results[name] = run_workload(WORKLOADS[name], config.counts[name], config)
        return [results[name] for name in config.workloads]
    for worker_kind in dict.fromkeys(WORKLOADS[name].worker for name in config.workloads):
        names = [n for n in config.workloads if WORKLOADS[n].worker == worker_kind]
        progress(f"starting {worker_kind} workers ({config.processes} processes × "
                 f"{config.threads} threads)")
        workers = start_workers(worker_kind, config)
        try:
            for name in names:
                workload = WORKLOADS[name]
                with workload_services(workload, config):
                    # Warm the workers (connections, template caches) outside the
                    # measurement.
                    run_workload(workload, min(WARMUP_JOBS, config.counts[name]), config,
                                 workers=workers)
                    progress(f"running {name}: {config.counts[name]} jobs")
                    results[name] = run_workload(workload, config.counts[name], config,
                                                 workers=workers)
        finally:
            workers.stop()
    return [results[name] for name in config.workloads]


def bare_baseline(count: int, progress: Callable[[str], None]) -> "Result":
    """The bare-Dramatiq no-op row of a benchmark's run (2 processes × 8 threads): how fast
    this shared machine is right now (README "Performance": every figure with it)."""
    [bare] = run(BenchConfig(workloads=["bare"], counts={"bare": count}, processes=2,
                             threads=8, timeout_s=120.0), progress)
    return bare


def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        model = platform.processor()
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        postgres = cursor.fetchone()[0]
    return {
        "cores": os.cpu_count(), "cpu": model or "unknown",
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(), "django": django.get_version(),
        "dramatiq": dramatiq.__version__, "redis": get_redis().info("server")["redis_version"],
        "postgresql": postgres, "os": platform.platform(terse=True),
        # Other work on the machine skews every figure: reported, not hidden.
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


# --- What the one-off benchmark commands share -------------------------------------------


def add_bare_count_argument(parser) -> None:
    parser.add_argument("--bare-count", type=int, default=20_000,
                        help="bare-Dramatiq no-ops measured first, the machine's speed in "
                             "this run (0: skip; default 20,000)")


def render_machine(m: dict[str, Any], bare: dict[str, int] | None) -> list[str]:
    """The report's first lines: the machine, its load, and the bare row of the run."""
    lines = [
        f"Machine: {m['cores']} cores, {m['cpu']}, {m['memory_gb']} GB RAM; PostgreSQL "
        f"{m['postgresql']}, Redis {m['redis']}, Dramatiq {m['dramatiq']}; load average "
        f"before the run {'/'.join(str(x) for x in m['load_average'])}"]
    if bare is not None:
        lines.append(f"Bare Dramatiq no-op baseline of this run: {bare['jobs_per_min']:,.0f} "
                     f"jobs/min ({bare['jobs']:,} jobs, 2 processes × 8 threads)")
    return lines
