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
    """``RedisBroker`` whose consumers dead-letter undecodable messages."""

    @property
    def consumer_class(self):
        return JobsiteRedisConsumer
