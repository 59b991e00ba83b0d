"""Dramatiq middleware of the platform, in the order ``DRAMATIQ_MIDDLEWARE`` lists them
(the ``jobs.E00x`` system checks enforce it; ``jobs.checks`` says why each place):

1. ``execution.JobExecution`` — first: starts each attempt (``attempts``), writes its log
   line, records failed jobs and failure streaks.
2. ``stats.JobStatsMiddleware`` — before ``Retries``: job statistics.
3. Dramatiq's ``AgeLimit``, ``TimeLimit``, ``Retries``, ``CurrentMessage``.
4. ``debounce.DebounceRelease`` — a debounced run releases its claim (``jobs.debounce``).
5. ``connections.DatabaseConnections`` — Django's connection housekeeping.
6. ``schedule_lock.ScheduleRunLock`` — last: a schedule's run never overlaps the previous.

django-dramatiq imports these modules when its app is created, before any model is
loaded: they import models only inside functions.
"""
