"""Django's database connection housekeeping for worker threads, once per job."""

from django.db import close_old_connections, connections
from dramatiq import Middleware


class DatabaseConnections(Middleware):
    """Django's request-end connection housekeeping, once per job.

    After every attempt (run or skipped) ``close_old_connections`` closes a connection
    that had errors or outlived ``CONN_MAX_AGE``, and re-arms Django's health check
    (``CONN_HEALTH_CHECKS``): the next job's first query checks the connection before
    using it, so one that died while the worker was idle is replaced, not failed on.
    django-dramatiq's ``DbConnectionsMiddleware`` does the same before each attempt as
    well; after-only saves that second pass per job, and misses nothing the health check
    does not catch (an over-age connection is closed at the end of the job that used it).
    """

    def after_process_message(self, broker, message, *, result=None, exception=None) -> None:
        close_old_connections()

    def after_skip_message(self, broker, message) -> None:
        close_old_connections()

    def before_worker_thread_shutdown(self, broker, thread) -> None:
        # Connections are per thread: close this thread's as it stops.
        connections.close_all()
