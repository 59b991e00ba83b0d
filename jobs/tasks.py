"""Actors of the jobs app (maintenance of the queue infrastructure itself)."""

from jobs import stats
from jobs.queues import MINUTE, Queue, jobsite_actor
from jobs.schedules import ScheduleSpec


@jobsite_actor(queue=Queue.MAINTENANCE, actor_name="job_stats_rollup", time_limit=10 * MINUTE)
def job_stats_rollup() -> None:
    stats.job_stats_rollup()


SCHEDULES: list[ScheduleSpec] = [
    ScheduleSpec(
        name="job-stats-rollup",
        actor_name="job_stats_rollup",
        cron="*/10 * * * *",
        time_zone="UTC",
        description="Fold per-minute job statistics from Redis into hourly PostgreSQL rows.",
        misfire_grace_seconds=600,
    ),
]
