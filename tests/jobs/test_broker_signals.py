"""JobsiteRedisBroker calls only the hooks middleware implement, in Dramatiq's order."""

import logging

import pytest
from django.conf import settings
from dramatiq.middleware import Middleware, SkipMessage

from config.redis import redis_connection_options
from jobs.broker import JobsiteRedisBroker


class Recorder(Middleware):
    def __init__(self, name, calls):
        self.name, self.calls = name, calls

    def before_process_message(self, broker, message):
        self.calls.append(("before", self.name))

    def after_process_message(self, broker, message, *, result=None, exception=None):
        self.calls.append(("after", self.name, result))


class Silent(Middleware):
    """Implements nothing: Middleware's defaults only."""


class Failing(Middleware):
    def after_process_message(self, broker, message, *, result=None, exception=None):
        raise RuntimeError("hook broke")


class Skipping(Middleware):
    def before_process_message(self, broker, message):
        raise SkipMessage("skip")


@pytest.fixture
def make_broker():
    brokers = []

    def make(*middleware):
        broker = JobsiteRedisBroker(namespace="jobsite-test-signals",
                                    middleware=list(middleware),
                                    **redis_connection_options(settings.REDIS_URL))
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.close()


def test_before_in_order_after_reversed(make_broker):
    calls = []
    broker = make_broker(Recorder("a", calls), Silent(), Recorder("b", calls))
    broker.emit_before("process_message", None)
    broker.emit_after("process_message", None, result=7)
    assert calls == [("before", "a"), ("before", "b"), ("after", "b", 7), ("after", "a", 7)]


def test_default_hooks_are_not_called(make_broker):
    silent = Silent()
    broker = make_broker(silent)
    assert broker._implemented("before_process_message") == ()
    assert broker._implemented("after_ack") == ()


def test_middleware_list_changes_are_seen(make_broker):
    calls = []
    broker = make_broker(Recorder("a", calls))
    broker.emit_before("process_message", None)
    broker.add_middleware(Recorder("b", calls))
    broker.emit_before("process_message", None)
    broker.middleware[:] = broker.middleware[1:]  # as tests remove a stopped worker's
    broker.emit_before("process_message", None)
    assert calls == [("before", "a"), ("before", "a"), ("before", "b"), ("before", "b")]


def test_failing_after_hook_is_logged_and_the_rest_run(make_broker, caplog):
    calls = []
    broker = make_broker(Recorder("a", calls), Failing())
    with caplog.at_level(logging.CRITICAL, logger="dramatiq"):
        broker.emit_after("process_message", None)
    assert calls == [("after", "a", None)]
    assert "Unexpected failure in after_process_message" in caplog.text


def test_middleware_error_in_before_hook_propagates(make_broker):
    calls = []
    broker = make_broker(Skipping(), Recorder("a", calls))
    with pytest.raises(SkipMessage):
        broker.emit_before("process_message", None)
    assert calls == []
