"""Fault: the Redis broker stops while confirmations come in, then comes back. What survives:
every confirmation made during the outage is recorded (transition, event, outbox call) and the
caller sees no error; once Redis is back, the sweep hands the calls to the cluster and each
report reaches the provider exactly once.

The test stops a Redis server of its own (never the shared one), on a free port.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import redis

from feedback_app import services, tasks
from feedback_app.models import Message, MessageEvent
from feedback_app.states import CallState, EventKind, Feedback

from ..factories import make_message
from ..test_qcluster import assert_each_reported_exactly_once, wait_until
from .conftest import all_succeeded, call_states

pytestmark = [
    pytest.mark.django_q,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]


class RedisServer:
    """``redis-server`` in the foreground on ``port``, with no persistence."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed"
        self.process = subprocess.Popen(  # noqa: S603 - the installed redis-server
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
            + ["--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        wait_until(lambda: self._answers(client), f"redis-server answers on {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(free_port())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(own_redis) -> str:
    return own_redis.url


def test_confirmations_while_redis_is_down_are_recorded_and_reported_when_it_is_back(
    own_redis, enqueue_to_redis, start_cluster, reports_path
):
    cluster = start_cluster()
    before = [make_message(provider="recording") for _ in range(3)]
    for message in before:
        assert services.confirm(message) is True
    wait_until(lambda: all_succeeded(before), "the cluster works the queue", cluster)

    # Injected: the broker goes away while confirmations keep coming in.
    own_redis.stop()
    during = [make_message(provider="recording") for _ in range(10)]
    for message in during:
        assert services.confirm(message) is True  # no error reaches the caller

    # Recorded: each transition, its event and its outbox call, waiting for the broker.
    assert set(
        Message.objects.filter(pk__in=[m.pk for m in during]).values_list("feedback", flat=True)
    ) == {Feedback.CONFIRMED}
    assert MessageEvent.objects.filter(
        message__in=during, kind=EventKind.FEEDBACK, to_value=Feedback.CONFIRMED
    ).count() == len(during)
    assert call_states(during) == Counter({CallState.PENDING: len(during)})

    own_redis.start()
    # The sweep (as its schedule would, every minute) re-enqueues calls past SWEEP_GRACE.
    time.sleep(1.1)

    def swept_and_done() -> bool:
        tasks.sweep_outbox()
        return all_succeeded(during)

    wait_until(swept_and_done, "the reports went out after Redis came back", cluster)
    assert_each_reported_exactly_once(before + during, reports_path)
