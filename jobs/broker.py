"""Jobsite's Redis broker: Dramatiq's, plus a dead-letter path for undecryptable messages.

Dramatiq's Redis consumer raises ``DecodeError`` out of its iterator when a body cannot be
decoded. The consumer thread logs it (with the raw body), restarts the consumer, and the
message stays in this worker's in-flight set: it is neither run nor dead-lettered, and it
comes back after every worker restart, for ever. Here such a message is rejected at once:
moved to the queue's dead-letter set (kept ``dead_message_ttl``), logged without its body,
and recorded as a failed job whose actor is unknown.
"""

import logging

from django.db import close_old_connections
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import q_name
from dramatiq.errors import DecodeError
from dramatiq.middleware import Middleware, MiddlewareError

from jobs.encryption import UndecryptableMessage, envelope_ids

logger = logging.getLogger("jobs.broker")


class JobsiteRedisConsumer(_RedisConsumer):
    def __next__(self):
        while True:
            try:
                return super().__next__()
            except DecodeError as error:
                # The undecodable body was already taken off the prefetch cache, so the
                # next round goes on with the following message.
                self._reject_undecodable(error)

    def _reject_undecodable(self, error: DecodeError) -> None:
        cause = error.error
        if isinstance(cause, UndecryptableMessage):
            message_id, redis_message_id, reason = (
                cause.message_id, cause.redis_message_id, cause.reason
            )
        else:
            data = error.data if isinstance(error.data, bytes) else b""
            message_id, redis_message_id = envelope_ids(data) if data else ("", "")
            reason = f"Message body could not be decoded ({type(cause).__name__})."
        queue_name = q_name(self.queue_name)
        logger.error(
            "Undecodable message dead-lettered",
            extra={"queue": queue_name, "message_id": message_id, "reason": reason},
        )
        if redis_message_id:
            self.broker.do_nack(self.queue_name, redis_message_id)
        else:
            logger.error("Undecodable message has no Redis id; it stays in flight until "
                         "this worker restarts", extra={"queue": queue_name})
        try:
            from jobs.services import failed_job_record_undecodable

            failed_job_record_undecodable(
                message_id=message_id or redis_message_id, queue_name=queue_name,
                reason=reason,
            )
        except Exception:
            logger.exception("Could not record the undecodable message as a failed job",
                             extra={"queue": queue_name, "message_id": message_id})
        finally:
            close_old_connections()


class JobsiteRedisBroker(RedisBroker):
    """``RedisBroker`` whose consumers dead-letter undecodable messages, and whose signals
    call only the middleware that implement them.

    Dramatiq's ``emit_before``/``emit_after`` call every middleware's hook for every
    signal, most of them ``Middleware``'s empty defaults: with ten middleware that is
    some eighty calls per job. Here each signal's list of implemented hooks is worked out
    once (again whenever the middleware list changes); the order, and the handling of a
    failing hook, are Dramatiq's.
    """

    def __init__(self, *args, **kwargs) -> None:
        self._hooks: dict[str, tuple] = {}
        self._hooks_for: list = []
        super().__init__(*args, **kwargs)

    def _implemented(self, name: str) -> tuple:
        if self._hooks_for != self.middleware:  # added, removed or reordered since
            self._hooks = {}
            self._hooks_for = list(self.middleware)
        hooks = self._hooks.get(name)
        if hooks is None:
            default = getattr(Middleware, name, None)
            ordered = reversed(self.middleware) if name.startswith("after_") else self.middleware
            hooks = self._hooks[name] = tuple(
                (middleware, hook) for middleware in ordered
                if getattr(hook := getattr(middleware, name), "__func__", hook) is not default
            )
        return hooks

    def emit_before(self, signal: str, *args, **kwargs) -> None:
        for middleware, hook in self._implemented("before_" + signal):
            try:
                hook(self, *args, **kwargs)
            except MiddlewareError:
                raise
            except Exception:
                self.logger.critical("Unexpected failure in before_%s of %r.", signal,
                                     middleware, exc_info=True)

    def emit_after(self, signal: str, *args, **kwargs) -> None:
        for middleware, hook in self._implemented("after_" + signal):
            try:
                hook(self, *args, **kwargs)
            except Exception:
                self.logger.critical("Unexpected failure in after_%s of %r.", signal,
                                     middleware, exc_info=True)

    @property
    def consumer_class(self):
        return JobsiteRedisConsumer
