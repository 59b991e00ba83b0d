"""The scheduler process end to end: real ``manage.py runscheduler`` subprocesses on the
test database and Redis, firing into the real broker (messages are counted in Redis; no
worker consumes them).

``--tick-seconds 2`` makes every schedule fire every two seconds so that leader election
is observed over several ticks in seconds; edit pickup and misfire recovery use real cron.
"""

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import dramatiq
import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django_apscheduler.models import DjangoJob, DjangoJobExecution

from jobs.models import Schedule, ScheduleOutcome
from jobs.redis import schedule_tick_key, scheduler_heartbeat_key, scheduler_leader_key
from jobs.scheduling.triggers import next_fire_time

ROOT = Path(settings.BASE_DIR)
TICK = 2
LOCK_TTL = 3
QUEUE = "maintenance"  # schedule_executions_prune's queue


def wait_for(condition, *, timeout: float = 30, what: str = "condition"):
    """Poll until ``condition()`` is truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


class SchedulerProcess:
    def __init__(self, *args: str):
        db = settings.DATABASES["default"]
        env = {**os.environ,
               "DJANGO_SETTINGS_MODULE": "config.settings_test",
               "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/"
                               f"{db['NAME']}",
               "TEST_REDIS_URL": os.environ.get("TEST_REDIS_URL", settings.REDIS_URL),
               "DRAMATIQ_NAMESPACE": settings.DRAMATIQ_NAMESPACE,
               "LOG_LEVEL": "INFO", "PYTHONUNBUFFERED": "1"}
        self.log_path = ROOT / ".var" / f"test-scheduler-{os.getpid()}-{id(self)}.log"
        self.log_path.parent.mkdir(exist_ok=True)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "runscheduler", "--sync-seconds", "0.5",
             "--lock-ttl", str(LOCK_TTL), *args],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def became_leader(self) -> bool:
        return "scheduler became the leader" in self.output()

    def started(self) -> bool:
        return "Scheduler running" in self.output()

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cleanup(self) -> None:
        self.stop()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


@pytest.fixture
def scheduler_processes(transactional_db, broker):
    started: list[SchedulerProcess] = []

    def start(*args: str) -> SchedulerProcess:
        process = SchedulerProcess(*args)
        started.append(process)
        return process

    yield start
    for process in started:
        process.cleanup()


def fired_messages(broker, queue: str = QUEUE) -> list[dramatiq.Message]:
    raw = broker.client.hvals(f"{broker.namespace}:{queue}.msgs")
    return sorted((dramatiq.Message.decode(r) for r in raw),
                  key=lambda m: m.message_timestamp)


def fires_of(broker, schedule: Schedule) -> list[dramatiq.Message]:
    return [m for m in fired_messages(broker) if m.options.get("schedule_id") == schedule.pk]


def make_schedule(name="prune", **fields) -> Schedule:
    values = {"actor_name": "schedule_executions_prune", "cron": "30 3 * * *",
              "time_zone": "UTC"}
    values.update(fields)
    return Schedule.objects.create(name=name, **values)


def ticks(messages: list[dramatiq.Message]) -> Counter:
    """Messages per tick (the scheduled time each fire carries)."""
    return Counter(m.options["scheduled_for"] for m in messages)


def assert_no_tick_skipped(per_tick: Counter) -> None:
    times = sorted(datetime.fromisoformat(t) for t in per_tick)
    gaps = {(b - a).total_seconds() for a, b in zip(times, times[1:], strict=False)}
    assert gaps == {TICK}, f"ticks skipped: {times}"


def job_next_run(schedule: Schedule):
    return DjangoJob.objects.filter(id=schedule.job_id).values_list(
        "next_run_time", flat=True).first()


def test_admin_edit_changes_the_next_fire_without_restart(scheduler_processes, staff_client):
    schedule = make_schedule(cron="0 3 * * *")
    process = scheduler_processes()
    first = next_fire_time(cron="0 3 * * *", time_zone="UTC", after=timezone.now())
    wait_for(lambda: job_next_run(schedule) == first, what="the job at the first cron")

    response = staff_client.post(
        reverse("admin:jobs_schedule_change", args=[schedule.pk]),
        {"name": "prune", "description": "", "actor_name": "schedule_executions_prune",
         "kwargs": "{}", "cron": "15 4 * * 1", "time_zone": "America/Toronto",
         "enabled": "on", "misfire_grace_seconds": "600"})
    assert response.status_code == 302

    edited = next_fire_time(cron="15 4 * * 1", time_zone="America/Toronto",
                            after=timezone.now())
    wait_for(lambda: job_next_run(schedule) == edited, timeout=10,
             what="the edit to reach the running scheduler")
    assert process.proc.poll() is None  # same process, no restart
    job = DjangoJob.objects.get(id=schedule.job_id)
    assert pickle.loads(job.job_state)["misfire_grace_time"] == 600


def test_deleting_a_schedule_removes_its_job(scheduler_processes):
    schedule = make_schedule()
    scheduler_processes()
    wait_for(lambda: job_next_run(schedule), what="the job")

    job_id = schedule.job_id
    schedule.delete()

    wait_for(lambda: not DjangoJob.objects.filter(id=job_id).exists(), timeout=10,
             what="the job to be removed")


def test_disabling_a_schedule_stops_its_fires(scheduler_processes, broker, staff_client):
    stopped = make_schedule("to-disable")
    control = make_schedule("control")
    scheduler_processes("--tick-seconds", str(TICK))
    wait_for(lambda: fires_of(broker, stopped), what="a first fire")

    response = staff_client.post(reverse("admin:jobs_schedule_changelist"),
                                 {"action": "disable", "_selected_action": [stopped.pk]})
    assert response.status_code == 302
    wait_for(lambda: job_next_run(stopped) is None, timeout=10, what="the job to go")
    # Let any fire already under way land, then count.
    seen = len(fires_of(broker, control))
    wait_for(lambda: len(fires_of(broker, control)) > seen, what="a control fire")
    before = len(fires_of(broker, stopped))
    seen = len(fires_of(broker, control))

    wait_for(lambda: len(fires_of(broker, control)) >= seen + 3, what="three more ticks")

    assert len(fires_of(broker, stopped)) == before
    stopped.refresh_from_db()
    assert not stopped.enabled


def test_two_schedulers_enqueue_exactly_once_per_tick(scheduler_processes, broker,
                                                      redis_client):
    schedule = make_schedule()
    first = scheduler_processes("--tick-seconds", str(TICK))
    second = scheduler_processes("--tick-seconds", str(TICK))
    wait_for(lambda: first.started() and second.started(), what="both processes")

    wait_for(lambda: len(fires_of(broker, schedule)) >= 5, what="five ticks")
    leaders = [first.became_leader(), second.became_leader()]
    first.stop()
    second.stop()

    messages = fires_of(broker, schedule)
    per_tick = ticks(messages)
    assert set(per_tick.values()) == {1}, f"a tick enqueued twice: {per_tick}"
    assert_no_tick_skipped(per_tick)
    assert leaders.count(True) == 1
    assert DjangoJobExecution.objects.filter(job_id=schedule.job_id).count() == len(messages)
    # Each fire claimed its tick (the guard against a re-fire across a leader handover).
    assert len(redis_client.keys(schedule_tick_key(schedule.pk, "*"))) == len(messages)


def test_follower_takes_over_when_the_leader_is_killed(scheduler_processes, broker,
                                                      redis_client):
    schedule = make_schedule()
    leader = scheduler_processes("--tick-seconds", str(TICK))
    wait_for(leader.became_leader, what="a leader")
    follower = scheduler_processes("--tick-seconds", str(TICK))
    wait_for(lambda: follower.started() and len(fires_of(broker, schedule)) >= 2,
             what="the follower to start and the leader to fire")
    assert not follower.became_leader()

    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()
    killed_at_ms = time.time() * 1000

    wait_for(lambda: [m for m in fires_of(broker, schedule)
                      if m.message_timestamp > killed_at_ms],
             timeout=LOCK_TTL + 3 * TICK + 5, what="the follower's first fire")
    assert follower.became_leader()
    assert redis_client.get(scheduler_leader_key()) is not None
    # Exactly one enqueue per tick across the handover, too, none skipped.
    per_tick = ticks(fires_of(broker, schedule))
    assert set(per_tick.values()) == {1}
    assert_no_tick_skipped(per_tick)


def leadership_time(process: SchedulerProcess) -> float:
    """Unix time of the process's "became the leader" log line."""
    for line in process.output().splitlines():
        if line.startswith("{") and "scheduler became the leader" in line:
            stamp = json.loads(line)["ts"]
            return datetime.fromisoformat(stamp).timestamp()
    raise AssertionError("no leadership line")


def test_a_standby_takes_over_within_the_lock_ttl(scheduler_processes, redis_client):
    # The README's bound: a standby leads at most SCHEDULER_LOCK_TTL_SECONDS after the
    # leader died. (Before: the key expired a full TTL after the last renewal and a standby
    # looked every TTL/3, so takeovers took up to TTL + TTL/3: 28.5–32.4 s for 30 s.)
    leader = scheduler_processes()
    wait_for(leader.became_leader, what="a leader")
    standby = scheduler_processes()
    wait_for(standby.started, what="the standby")
    time.sleep(LOCK_TTL / 3 * 1.5)  # let the leader renew at least once more

    leader.proc.send_signal(signal.SIGKILL)
    leader.proc.wait()
    killed_at = time.time()

    wait_for(standby.became_leader, timeout=LOCK_TTL + 5, what="the takeover")
    assert leadership_time(standby) - killed_at <= LOCK_TTL


def test_scheduler_sets_its_heartbeat_and_health_sees_it(scheduler_processes, redis_client):
    from jobs.monitoring.health import check_scheduler

    process = scheduler_processes()

    value = wait_for(lambda: redis_client.get(scheduler_heartbeat_key()), what="the heartbeat")
    wait_for(process.became_leader, what="leadership")
    assert abs(float(value) - time.time()) < 15
    assert 0 < redis_client.ttl(scheduler_heartbeat_key()) <= 60
    health = check_scheduler(redis_client)
    assert (health["status"], health["leader"]) == ("running", True)


def simulate_downtime(schedule: Schedule, *, missed_since: timedelta) -> None:
    """The scheduler stopped long ago with this job's next run ``missed_since`` back."""
    past = timezone.now() - missed_since
    job = DjangoJob.objects.get(id=schedule.job_id)
    state = pickle.loads(job.job_state)
    state["next_run_time"] = past
    job.job_state = pickle.dumps(state)
    job.next_run_time = past
    job.save()


def install_job(scheduler_processes, schedule: Schedule) -> None:
    process = scheduler_processes()
    wait_for(lambda: job_next_run(schedule), what="the job")
    process.stop()


def test_misfire_within_grace_fires_once_coalesced(scheduler_processes, broker):
    # Every 5 minutes; the scheduler was down for the last three fire times.
    schedule = make_schedule(cron="*/5 * * * *", misfire_grace_seconds=3600)
    install_job(scheduler_processes, schedule)
    simulate_downtime(schedule, missed_since=timedelta(minutes=12))

    scheduler_processes()

    wait_for(lambda: fires_of(broker, schedule), what="the recovery fire")
    wait_for(lambda: job_next_run(schedule) > timezone.now(), what="the next run to move on")
    assert len(fires_of(broker, schedule)) == 1
    schedule.refresh_from_db()
    assert schedule.last_outcome == ScheduleOutcome.ENQUEUED


def test_misfire_outside_grace_records_a_missed_run(scheduler_processes, broker):
    schedule = make_schedule(cron="0 3 * * *", misfire_grace_seconds=60)
    install_job(scheduler_processes, schedule)
    simulate_downtime(schedule, missed_since=timedelta(minutes=10))

    scheduler_processes()

    wait_for(lambda: Schedule.objects.get(pk=schedule.pk).last_outcome
             == ScheduleOutcome.MISSED, what="the missed run to be recorded")
    # APScheduler 3 submits the job, then its executor finds the run too late: the
    # execution row goes "Started execution" -> "Missed!" (django-apscheduler's listener).
    wait_for(lambda: DjangoJobExecution.objects.filter(
        job_id=schedule.job_id, status=DjangoJobExecution.MISSED).exists(),
        what="the execution record")
    assert fires_of(broker, schedule) == []
    assert list(DjangoJobExecution.objects.filter(job_id=schedule.job_id)
                .values_list("status", flat=True)) == [DjangoJobExecution.MISSED]
    assert job_next_run(schedule) == next_fire_time(cron="0 3 * * *", time_zone="UTC",
                                                    after=timezone.now())
