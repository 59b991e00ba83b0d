"""Recovery with real worker processes killed underneath (jobs.recovery): a killed
worker's messages run again within seconds, a message that keeps killing workers stops,
and health sees the dead worker and its orphaned messages."""

import signal
import time

import pytest

from jobs.models import FailedJob
from jobs.monitoring.broker_state import live_worker_count, queue_depths
from jobs.redis import get_redis
from tests.conftest import child_env, process_tree, wait_until, worker_ready
from tests.probe.tasks import probe_key, probe_kill_worker, probe_sleep


def notes(name: str) -> list[tuple[str, int, float]]:
    """What a probe actor recorded: (what, pid, unix time)."""
    out = []
    for raw in get_redis().lrange(probe_key(name), 0, -1):
        what, pid, when = raw.decode().split()
        out.append((what, int(pid), float(when)))
    return out


@pytest.mark.django_db(transaction=True)
def test_a_killed_workers_messages_run_again_within_30_seconds(broker, manage_py):
    # Given two worker groups on production's recovery settings (15 s heartbeat timeout,
    # maintenance every 5 s), and jobs in flight on the first
    env = child_env(BROKER_MAINTENANCE_SECONDS="5", BROKER_HEARTBEAT_TIMEOUT_SECONDS="15")
    doomed = manage_py("runworkergroup", "batch", "--processes", "1", "--threads", "2",
                       env=env, name="doomed")
    worker_ready(doomed)
    names = [f"slow-{i}" for i in range(6)]
    for name in names:
        probe_sleep.send(name, 3)
    doomed_pids = process_tree(doomed)
    wait_until(lambda: sum(bool(notes(n)) for n in names) >= 2, timeout=20)
    survivor = manage_py("runworkergroup", "batch", "--processes", "1", "--threads", "2",
                         env=env, name="survivor")
    worker_ready(survivor)
    live_before = live_worker_count()

    # When the first is killed mid-job (SIGKILL: no shutdown, no requeue of its own)
    doomed.signal(signal.SIGKILL)
    doomed.process.wait()
    killed_at = time.time()
    running_then = [n for n in names if any(pid in doomed_pids for _, pid, _ in notes(n))
                    and not any(what == "done" for what, _, _ in notes(n))]
    assert running_then, "no job was running on the killed worker"

    # Then health flags its in-flight messages as orphaned and stops counting it ...
    wait_until(lambda: queue_depths()["maintenance"].orphaned > 0, timeout=20)
    wait_until(lambda: live_worker_count() < live_before, timeout=25)
    # ... and every job it was running starts again on the survivor within 30 s
    wait_until(lambda: all(any(what == "done" for what, _, _ in notes(n)) for n in names),
               timeout=60)
    for name in running_then:
        restarted = [when for what, pid, when in notes(name)
                     if what == "start" and pid not in doomed_pids]
        assert restarted and restarted[0] - killed_at <= 30, (name, notes(name))
    assert queue_depths()["maintenance"].orphaned == 0
    assert not FailedJob.objects.exists()


def supervise(start, *, until, timeout: float) -> int:
    """Restart the worker group whenever it exits, as systemd or Kubernetes would, until
    ``until()``; returns how many times it was started."""
    deadline = time.monotonic() + timeout
    process, starts = start(), 1
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met while supervising")
        if process.process.poll() is not None:
            process, starts = start(), starts + 1
        time.sleep(0.2)
    return starts


@pytest.mark.django_db(transaction=True)
def test_a_message_that_keeps_killing_its_worker_stops_and_is_a_failed_job(
        broker, manage_py):
    # Given a worker group restarted whenever it dies, one thread (so only the poison
    # message runs when it dies), fast recovery settings, and innocent work queued after
    env = child_env(BROKER_MAINTENANCE_SECONDS="0.5", BROKER_HEARTBEAT_TIMEOUT_SECONDS="2",
                    JOB_MAX_WORKER_CRASHES="3")
    probe_kill_worker.send("poison")
    innocents = [f"innocent-{i}" for i in range(4)]
    for name in innocents:
        probe_sleep.send(name, 0.05)

    def start():
        return manage_py("runworkergroup", "batch", "--processes", "1", "--threads", "1",
                         env=env, name="supervised")

    # When it runs: the poison message kills the worker, again and again
    starts = supervise(start, timeout=120, until=lambda: FailedJob.objects.exists()
                       and all(any(w == "done" for w, _, _ in notes(n)) for n in innocents))

    # Then after three deaths it is not run again: it is in the failed-job list, dead-
    # lettered, and the innocent work queued with it ran (prefetched is not blamed)
    assert [what for what, _, _ in notes("poison")] == ["start"] * 3
    assert starts >= 3
    failed = FailedJob.objects.get()
    assert (failed.actor_name, failed.queue_name, failed.exception_type, failed.attempts) == (
        "probe_kill_worker", "maintenance", "WorkerCrashed", 3)
    assert "died 3 times" in failed.exception_message
    assert queue_depths()["maintenance"].dead == 1
    assert not FailedJob.objects.filter(actor_name="probe_sleep").exists()


def test_a_message_a_thread_takes_before_the_after_boot_hooks_is_marked(broker, settings,
                                                                       redis_client):
    """Dramatiq starts the worker threads before it calls the after-boot hooks: a message
    they take then must be marked running too, or the crash it causes is not counted (and
    a poison message runs once more than JOB_MAX_WORKER_CRASHES)."""
    import threading

    import dramatiq

    from jobs.middleware.recovery import WorkerRecovery
    from jobs.recovery import running_key

    settings.BROKER_MAINTENANCE_SECONDS = 5
    recovery = WorkerRecovery()
    recovery.before_worker_boot(broker, None)  # the threads start right after this

    message = dramatiq.Message(queue_name="maintenance", actor_name="probe_sleep",
                               args=("early", 0), kwargs={},
                               options={"redis_message_id": "rid-early"})
    recovery.before_process_message(broker, message)

    assert redis_client.hget(running_key(broker.broker_id),
                             str(threading.get_ident())) == b"rid-early"
