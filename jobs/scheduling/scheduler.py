"""The scheduler process (``manage.py runscheduler``): APScheduler + DjangoJobStore.

One process at a time fires: each ``runscheduler`` starts an APScheduler
``BlockingScheduler`` *paused*, and a coordinator thread competes for a Redis leader lock
(``<namespace>:scheduler:leader``, TTL renewed every third of it). The holder resumes its
scheduler and mirrors ``Schedule`` rows into APScheduler jobs every ``sync_seconds``; the
others stay paused and take over within the TTL when the leader dies. A fire calls
:func:`fire_schedule`, which re-checks the lock before enqueueing, so a leader that lost
the lock (paused by a long GC, partitioned) does not enqueue a second time.

Only enqueues: workers do the work. APScheduler cannot pickle ``actor.send``, so the job
is this module's function with the schedule id; it looks the actor up by name at fire time.
"""

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC

from apscheduler import events
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.job import Job
from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import STATE_STOPPED
from apscheduler.schedulers.blocking import BlockingScheduler
from django.db import close_old_connections
from django_apscheduler.jobstores import DjangoJobStore
from redis.exceptions import LockError, RedisError

from jobs.models import Schedule
from jobs.redis import (
    get_redis,
    schedule_tick_key,
    scheduler_heartbeat_key,
    scheduler_leader_key,
)
from jobs.scheduling import services
from jobs.scheduling.triggers import WallClockCronTrigger, schedule_trigger

logger = logging.getLogger(__name__)

HEARTBEAT_TTL_SECONDS = 60
HEARTBEAT_EVERY_SECONDS = 10  # the contract with health: at least every 15 s
JOB_PREFIX = "schedule:"
TICK_KEY_TTL_SECONDS = 2 * 24 * 3600  # longer than any misfire grace worth having

# The lock this process holds while it leads; ``None`` when no runner runs in the process
# (an admin request or a test calling fire_schedule directly).
_leader: "LeaderLock | None" = None


def standby_poll_seconds(ttl_seconds: float) -> float:
    """How often a standby asks for the leader lock: a tenth of the TTL, 0.2–1 s."""
    return max(0.2, min(1.0, ttl_seconds / 10))


class LeaderLock:
    """A Redis lock with a TTL that only its holder can renew or release (redis-py ``Lock``,
    token compared in Lua).

    ``ttl_seconds`` is the takeover bound: a standby holds the lock at most that long after
    the leader died. The key itself expires one standby poll earlier (``expiry_seconds``),
    because a standby notices the expiry only at its next poll: the holder renews it every
    third of that, a standby polls every :func:`standby_poll_seconds`, so expiry + one poll
    stays within ``ttl_seconds``.
    """

    def __init__(self, *, ttl_seconds: float, key: str | None = None):
        self.ttl_seconds = ttl_seconds
        self.poll_seconds = standby_poll_seconds(ttl_seconds)
        self.expiry_seconds = ttl_seconds - self.poll_seconds
        self._lock = get_redis().lock(key or scheduler_leader_key(),
                                      timeout=self.expiry_seconds, blocking=False,
                                      thread_local=False)
        self._held = False

    def acquire(self) -> bool:
        self._held = bool(self._lock.acquire(blocking=False))
        return self._held

    def renew(self) -> bool:
        """Reset the TTL; ``False`` (and no longer held) if another process has the lock."""
        try:
            self._lock.reacquire()
        except (LockError, RedisError):  # taken over, expired, or Redis unreachable
            self._held = False
        return self._held

    def held(self) -> bool:
        """Whether this process still holds the lock (asks Redis)."""
        try:
            self._held = self._held and self._lock.owned()
        except RedisError:
            self._held = False
        return self._held

    def release(self) -> None:
        if self._held:
            try:
                self._lock.release()
            except LockError:
                pass
            self._held = False


def fire_schedule(schedule_id: int, scheduled_for: str | None = None) -> str | None:
    """The APScheduler job of every schedule: enqueue its actor, by name, once per tick.

    Re-reads the row so edits made since the last sync (arguments, actor, enabled) apply.
    ``scheduled_for`` (the tick's UTC time, added by :class:`TickExecutor`) makes a tick
    enqueue at most once even when a new leader re-fires a tick the old one fired just
    before it died. Returns the message id, or ``None`` when nothing was enqueued.
    """
    close_old_connections()
    try:
        if _leader is not None and not _leader.held():
            logger.warning("not the leader any more: fire skipped",
                           extra={"schedule_id": schedule_id})
            return None
        schedule = Schedule.objects.filter(pk=schedule_id).first()
        if schedule is None or not schedule.enabled:
            return None
        if scheduled_for and not get_redis().set(schedule_tick_key(schedule_id, scheduled_for), "1",
                                                 nx=True, ex=TICK_KEY_TTL_SECONDS):
            logger.warning("tick already enqueued: fire skipped",
                           extra={"schedule_id": schedule_id, "scheduled_for": scheduled_for})
            return None
        return services.schedule_enqueue(schedule=schedule, scheduled_for=scheduled_for)
    finally:
        close_old_connections()


class TickExecutor(ThreadPoolExecutor):
    """APScheduler's thread pool, handing each fire its scheduled time (``scheduled_for``).

    The job function does not otherwise learn which tick it runs for; the stored job is
    not changed (a tagged copy runs).
    """

    def _do_submit_job(self, job: Job, run_times):
        tagged = Job.__new__(Job)
        tagged.__setstate__(job.__getstate__())
        tagged._scheduler = job._scheduler
        tagged._jobstore_alias = job._jobstore_alias
        tagged.kwargs = {**job.kwargs,
                         "scheduled_for": run_times[-1].astimezone(UTC).isoformat()}
        return super()._do_submit_job(tagged, run_times)


def schedule_id_from_job_id(job_id: str) -> int | None:
    if not job_id.startswith(JOB_PREFIX):
        return None
    try:
        return int(job_id.removeprefix(JOB_PREFIX))
    except ValueError:
        return None


@dataclass
class SyncCounts:
    added: int = 0
    rescheduled: int = 0
    removed: int = 0
    invalid: int = 0


class SchedulerRunner:
    """Leader election, heartbeat and ``Schedule`` → APScheduler sync around one scheduler."""

    def __init__(self, *, sync_seconds: float = 5, lock_ttl_seconds: float = 30,
                 tick_seconds: int | None = None):
        self.sync_seconds = sync_seconds
        self.lock_ttl_seconds = lock_ttl_seconds
        self.tick_seconds = tick_seconds
        self.lock = LeaderLock(ttl_seconds=lock_ttl_seconds)
        self.scheduler = BlockingScheduler(
            jobstores={"default": DjangoJobStore()},
            executors={"default": TickExecutor(10)},
            job_defaults={"coalesce": True, "max_instances": 1},
            timezone=UTC,
        )
        self.scheduler.add_listener(self._on_missed, events.EVENT_JOB_MISSED)
        self.scheduler.add_listener(self._on_error, events.EVENT_JOB_ERROR)
        self._stop = threading.Event()
        self._leading = False
        self._last_sync = 0.0
        self._last_renew = 0.0
        self._last_heartbeat = 0.0

    # --- lifecycle ---------------------------------------------------------------------
    def run(self) -> None:
        """Block until :meth:`stop` (or a signal handler calling it)."""
        global _leader
        _leader = self.lock
        coordinator = threading.Thread(target=self._coordinate, name="scheduler-coordinator",
                                       daemon=True)
        coordinator.start()
        try:
            self.scheduler.start(paused=True)  # blocks; resumed while this process leads
        finally:
            self._stop.set()
            coordinator.join(timeout=5)
            self.lock.release()
            _leader = None

    def stop(self) -> None:
        """Stop firing; a fire already under way finishes and is recorded (they are short:
        they only enqueue)."""
        self._stop.set()
        if self.scheduler.state != STATE_STOPPED:
            self.scheduler.shutdown(wait=True)

    # --- coordinator thread ------------------------------------------------------------
    def _coordinate(self) -> None:
        # Every standby poll: a standby asks for the lock, the leader renews it when a
        # third of its expiry has passed and syncs every sync_seconds.
        step = self.lock.poll_seconds
        while not self._stop.is_set():
            try:
                self._beat()
            except Exception:  # keep coordinating: Redis or the database may come back
                logger.exception("scheduler coordinator step failed")
            finally:
                close_old_connections()
            self._stop.wait(step)

    def _beat(self) -> None:
        redis_client = get_redis()
        now = time.time()
        if now - self._last_heartbeat >= min(HEARTBEAT_EVERY_SECONDS, self.sync_seconds):
            redis_client.set(scheduler_heartbeat_key(), repr(now), ex=HEARTBEAT_TTL_SECONDS)
            self._last_heartbeat = now
        if self.scheduler.state == STATE_STOPPED:
            return  # not started yet, or shutting down
        if self._leading:
            if time.monotonic() - self._last_renew >= self.lock.expiry_seconds / 3:
                if not self.lock.renew():
                    logger.warning("scheduler lost the leader lock; pausing")
                    self._leading = False
                    self.scheduler.pause()
                    return
                self._last_renew = time.monotonic()
        elif self.lock.acquire():
            logger.info("scheduler became the leader")
            self._leading = True
            self._last_renew = time.monotonic()
            self.sync()
            self._last_sync = time.monotonic()
            self.scheduler.resume()
            return
        if self._leading and time.monotonic() - self._last_sync >= self.sync_seconds:
            self.sync()
            self._last_sync = time.monotonic()

    @property
    def leading(self) -> bool:
        return self._leading

    # --- Schedule rows → APScheduler jobs ----------------------------------------------
    def sync(self) -> SyncCounts:
        """Make the job store match the enabled ``Schedule`` rows.

        A job whose trigger and grace are unchanged is left alone, so its stored next run
        time (possibly in the past after downtime) drives misfire recovery.
        """
        counts = SyncCounts()
        wanted: dict[str, Schedule] = {
            s.job_id: s for s in Schedule.objects.filter(enabled=True)
        }
        existing = {job.id: job for job in self.scheduler.get_jobs()
                    if job.id.startswith(JOB_PREFIX)}
        for job_id in existing:
            if job_id not in wanted:
                self._remove(job_id)
                counts.removed += 1
        for job_id, schedule in wanted.items():
            try:
                counts_key = self._sync_one(schedule, existing.get(job_id))
            except Exception as exc:  # a row written around the admin form: skip it
                counts_key = "invalid"
                services.schedule_record_invalid(schedule_id=schedule.pk,
                                                 error=f"invalid schedule: {exc}")
                if job_id in existing:
                    self._remove(job_id)
            if counts_key:
                setattr(counts, counts_key, getattr(counts, counts_key) + 1)
        return counts

    def _sync_one(self, schedule: Schedule, job) -> str | None:
        """Add or reschedule ``schedule``'s job; returns what it did (a SyncCounts field)."""
        trigger = schedule_trigger(cron=schedule.cron, time_zone=schedule.time_zone,
                                   tick_seconds=self.tick_seconds)
        if job is None:
            self.scheduler.add_job(
                fire_schedule, trigger=trigger, args=[schedule.pk], id=schedule.job_id,
                name=schedule.name[:100], misfire_grace_time=schedule.misfire_grace_seconds,
                coalesce=True, max_instances=1, replace_existing=True,
            )
            return "added"
        if (not isinstance(job.trigger, WallClockCronTrigger)
                or str(job.trigger) != str(trigger)
                or job.misfire_grace_time != schedule.misfire_grace_seconds):
            self.scheduler.modify_job(job.id, misfire_grace_time=schedule.misfire_grace_seconds,
                                      name=schedule.name[:100])
            self.scheduler.reschedule_job(job.id, trigger=trigger)
            return "rescheduled"
        return None

    def _remove(self, job_id: str) -> None:
        try:
            self.scheduler.remove_job(job_id)
        except JobLookupError:
            pass

    # --- events --------------------------------------------------------------------------
    def _on_missed(self, event: events.JobExecutionEvent) -> None:
        schedule_id = schedule_id_from_job_id(event.job_id)
        if schedule_id is None:
            return
        try:
            services.schedule_record_missed(schedule_id=schedule_id,
                                            scheduled_at=event.scheduled_run_time)
        finally:
            close_old_connections()

    def _on_error(self, event: events.JobExecutionEvent) -> None:
        schedule_id = schedule_id_from_job_id(event.job_id)
        if schedule_id is None:
            return
        try:
            services.schedule_record_fire_error(
                schedule_id=schedule_id, error=type(event.exception).__name__)
        finally:
            close_old_connections()
