"""Jobsite's Redis broker: Dramatiq's, plus a dead-letter path for undecryptable messages,
and fewer Redis round trips and Python calls per job (see JobsiteRedisBroker).

Dramatiq's Redis consumer raises ``DecodeError`` out of its iterator when a body cannot be
decoded. The consumer thread logs it (with the raw body), restarts the consumer, and the
message stays in this worker's in-flight set: it is neither run nor dead-lettered, and it
comes back after every worker restart, for ever. Here such a message is rejected at once:
moved to the queue's dead-letter set (kept ``dead_message_ttl``), logged without its body,
and recorded as a failed job whose actor is unknown.
"""

import logging
import threading
from uuid import uuid4

import redis
from django.db import close_old_connections
from dramatiq import Message
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer
from dramatiq.common import current_millis, dq_name, q_name
from dramatiq.errors import ConnectionClosed, DecodeError
from dramatiq.middleware import Middleware, MiddlewareError

from jobs.encryption import UndecryptableMessage, envelope_ids

logger = logging.getLogger("jobs.broker")


class _Waiter:
    """One thread's command, waiting to be sent or sending its group."""

    __slots__ = ("item", "lead", "error", "_woken")

    def __init__(self, item) -> None:
        self.item = item
        self.lead = False  # this thread sends the next group
        self.error: BaseException | None = None
        self._woken = threading.Lock()
        self._woken.acquire()

    def wait(self) -> None:
        self._woken.acquire()

    def wake(self) -> None:
        self._woken.release()


class RoundTripGroup:
    """Send the Redis commands of many threads in one round trip.

    A thread whose command comes while another group is on its way waits; when that round
    trip is back, the first waiting thread sends every waiting command in one pipeline
    and wakes the others. Each thread returns only once Redis has its command, and raises
    its own error if that failed: what each thread is promised does not change, only the
    number of round trips. A thread sending alone sends alone, at once. Subclasses say
    what one group is (:meth:`_execute`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._sending = False

    def submit(self, item) -> None:
        waiter = _Waiter(item)
        with self._lock:
            self._waiting.append(waiter)
            if not self._sending:
                self._sending = waiter.lead = True
        if not waiter.lead:
            waiter.wait()  # woken once its command is done, or to send the next group
        if waiter.lead:
            self._send(waiter)
        if waiter.error is not None:
            raise waiter.error

    def _send(self, leader: _Waiter) -> None:
        with self._lock:
            group, self._waiting = self._waiting, []
        try:
            self._execute(group)
        finally:
            with self._lock:
                if self._waiting:  # they came while this group was out: next group
                    self._waiting[0].lead = True
                    self._waiting[0].wake()
                else:
                    self._sending = False
            for waiter in group:
                if waiter is not leader:
                    waiter.wake()

    def _execute(self, group: list[_Waiter]) -> None:
        """Send ``group`` in one round trip; set each waiter's ``error`` if its failed."""
        raise NotImplementedError


class AckGroup(RoundTripGroup):
    """Acknowledge messages in groups: one Redis round trip for the acks of many threads.

    Dramatiq's worker threads each acknowledge their message with a call of the broker's
    ``dispatch`` script and wait for the reply, a round trip per job. Here each group is
    one pipeline of the same ``ack`` calls of the script, so Redis does exactly what it
    did, and delivery guarantees do not change.
    """

    def __init__(self, broker: RedisBroker, queue_name: str) -> None:
        super().__init__()
        self.broker = broker
        self.queue_name = queue_name

    def ack(self, redis_message_id: str) -> None:
        self.submit(redis_message_id)

    def _execute(self, group: list[_Waiter]) -> None:
        try:
            results = self.broker.dispatch_many(
                [("ack", self.queue_name, (waiter.item,)) for waiter in group])
        except Exception as error:
            results = [error] * len(group)
        except BaseException:
            # This thread was interrupted (a time limit's asynchronous exception): the
            # others' acks are unconfirmed, and Dramatiq's worker retries on this error.
            for waiter in group:
                waiter.error = ConnectionClosed(RuntimeError("acknowledgement interrupted"))
            raise
        for waiter, result in zip(group, results, strict=True):
            if isinstance(result, redis.ConnectionError):
                waiter.error = ConnectionClosed(result)  # what Dramatiq's worker retries
            elif isinstance(result, Exception):
                waiter.error = result


class JobsiteRedisConsumer(_RedisConsumer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._acks = AckGroup(self.broker, self.queue_name)

    def ack(self, message) -> None:
        try:
            # On the consumer's queue, as Dramatiq's: a delayed message's own queue_name
            # is its delay queue's.
            self._acks.ack(message.options["redis_message_id"])
        finally:
            self.queued_message_ids.discard(message.message_id)

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
    """``RedisBroker`` whose consumers dead-letter undecodable messages and acknowledge in
    groups (:class:`AckGroup`), which sends many messages in one round trip
    (:meth:`enqueue_many`, for ``jobs.enqueue``), and whose signals call only the
    middleware that implement them.

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

    # --- many dispatch-script calls in one round trip ------------------------------------

    def dispatch_many(self, calls: list[tuple[str, str, tuple]]) -> list:
        """Run Dramatiq's ``dispatch`` script once per ``(command, queue_name, args)``, as
        ``RedisBroker._dispatch`` does (dramatiq 2.2), in one pipeline. Returns each
        call's result or exception, in order.

        The script is called by its sha: a redis-py ``Script`` run on a pipeline first asks
        Redis whether it exists, a second round trip. Calls that find it gone (Redis
        restarted) load it and run again.
        """
        results = self._dispatch_pipeline(calls)
        missing = [i for i, result in enumerate(results)
                   if isinstance(result, redis.exceptions.NoScriptError)]
        if missing:
            script = self.scripts["dispatch"]
            script.sha = self.client.script_load(script.script)
            for i, result in zip(missing, self._dispatch_pipeline([calls[i] for i in missing]),
                                 strict=True):
                results[i] = result
        return results

    def _dispatch_pipeline(self, calls: list[tuple[str, str, tuple]]) -> list:
        sha = self.scripts["dispatch"].sha
        pipe = self.client.pipeline(transaction=False)
        for command, queue_name, args in calls:
            pipe.evalsha(
                sha, 1, self.namespace, command, current_millis(), queue_name, self.broker_id,
                self.heartbeat_timeout, self.dead_message_ttl,
                self._should_do_maintenance(command), self._max_unpack_size(), *args,
            )
        return pipe.execute(raise_on_error=False)

    def enqueue_many(self, items: list[tuple[Message, int | None]]) -> list[Message]:
        """``enqueue(message, delay=delay)`` for each item, in one round trip to Redis.

        The same messages, middleware signals and errors as one ``enqueue`` per message:
        ``before_enqueue`` for all, then the pipeline, then ``after_enqueue`` for each that
        Redis accepted. A message Redis refused raises (the first such error) after that.
        """
        prepared = []
        for message, delay in items:
            # RedisBroker.enqueue's preparation (dramatiq 2.2).
            queue_name = message.queue_name
            message = message.copy(options={"redis_message_id": str(uuid4())})
            if delay is not None:
                queue_name = dq_name(queue_name)
                message = message.copy(queue_name=queue_name,
                                       options={"eta": current_millis() + delay})
            self.emit_before("enqueue", message, delay)
            prepared.append((message, delay))
        results = self.dispatch_many([
            ("enqueue", message.queue_name,
             (message.options["redis_message_id"], message.encode()))
            for message, _ in prepared
        ])
        error = None
        for (message, delay), result in zip(prepared, results, strict=True):
            if isinstance(result, Exception):
                error = error or result
            else:
                self.emit_after("enqueue", message, delay)
        if error is not None:
            raise error  # as enqueue raises it (a redis.ConnectionError when Redis is down)
        return [message for message, _ in prepared]

    @property
    def consumer_class(self):
        return JobsiteRedisConsumer
