"""A real ``manage.py qcluster`` on Redis delivers every report exactly once, and a killed cluster
or lost tasks only delay reports until the sweep: nothing is lost, nothing is reported twice."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from feedback_app import services, tasks
from feedback_app.models import Message, ProviderCall
from feedback_app.states import CallState

from .factories import make_message
from .qcluster_settings import CLAIM_TIMEOUT, cluster_feedback_app
from .recording_provider import read_reports

pytestmark = [
    pytest.mark.django_q,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 30  # seconds allowed for any one wait


class Cluster:
    """``manage.py qcluster`` (or another worker command) in its own process group, so SIGKILL
    takes its workers too."""

    def __init__(
        self, env: dict[str, str], log: Path, command: tuple[str, ...] = ("qcluster",)
    ) -> None:
        self.env = env
        self.log = log
        self.command = command
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                [sys.executable, "manage.py", *self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def kill(self) -> None:
        """SIGKILL the cluster and its children at once, like an OOM kill or a lost host."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""


@pytest.fixture
def queue_name() -> str:
    return f"feedback_test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def reports_path(tmp_path) -> Path:
    return tmp_path / "reports.jsonl"


@pytest.fixture
def enqueue_to_redis(settings, monkeypatch, queue_name, reports_path) -> Iterator[None]:
    """This process enqueues real tasks on the cluster's Redis queue instead of running them."""
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    settings.FEEDBACK_APP = cluster_feedback_app(
        settings.FEEDBACK_APP, str(reports_path), queue_name
    )
    monkeypatch.setattr(Conf, "SYNC", False)
    broker = get_broker(queue_name)
    broker.delete_queue()
    yield
    broker.delete_queue()


@pytest.fixture
def start_cluster(tmp_path, queue_name, reports_path) -> Iterator[Callable[[], Cluster]]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.qcluster_settings",
        "FEEDBACK_TEST_DB_NAME": connection.settings_dict["NAME"],
        "FEEDBACK_TEST_QUEUE": queue_name,
        "FEEDBACK_TEST_REPORTS": str(reports_path),
        "REDIS_URL": django_settings.Q_CLUSTER["redis"],
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    started: list[Cluster] = []

    def start() -> Cluster:
        cluster = Cluster(env, tmp_path / f"qcluster-{len(started)}.log")
        started.append(cluster)
        cluster.start()
        return cluster

    yield start
    for cluster in started:
        cluster.kill()


def wait_until(condition: Callable[[], bool], what: str, cluster: Cluster | None = None) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            log = f"\n--- cluster log ---\n{cluster.tail()}" if cluster else ""
            pytest.fail(f"timed out after {TIMEOUT}s waiting until {what}{log}")
        time.sleep(0.1)


def call_states(messages: list[Message]) -> Counter:
    return Counter(
        ProviderCall.objects.filter(message__in=messages).values_list("state", flat=True)
    )


def all_succeeded(messages: list[Message]) -> bool:
    return call_states(messages) == Counter({CallState.SUCCEEDED: len(messages)})


def confirm_batch(size: int) -> list[Message]:
    """Confirm ``size`` messages, each in its own committed transaction (so each enqueues)."""
    messages = [make_message(provider="recording") for _ in range(size)]
    for message in messages:
        assert services.confirm(message) is True
    return messages


def assert_each_reported_exactly_once(
    messages: list[Message], reports_path: Path, outcome: str = "confirmed"
) -> None:
    """Each message's outcome was accepted once; any repeat was the same call's idempotent retry."""
    keys = dict(
        ProviderCall.objects.filter(message__in=messages).values_list(
            "message__provider_message_id", "idempotency_key"
        )
    )
    wanted = {m.provider_message_id for m in messages}
    received = [r for r in read_reports(reports_path) if r["provider_message_id"] in wanted]
    accepted = Counter(r["provider_message_id"] for r in received if not r["duplicate"])
    assert accepted == Counter(wanted), "some outcome was lost or accepted twice"
    assert {r["outcome"] for r in received} == {outcome}
    for report in received:
        assert report["idempotency_key"] == str(keys[report["provider_message_id"]])


def test_a_real_cluster_delivers_each_report_once_and_recovers_from_kill_and_lost_tasks(
    enqueue_to_redis, start_cluster, reports_path, queue_name
):
    from django_q.brokers import get_broker

    # 1. A healthy cluster: every confirmation reaches the provider exactly once, no retries.
    cluster = start_cluster()
    first = confirm_batch(10)
    wait_until(lambda: all_succeeded(first), "the first batch is delivered", cluster)
    assert_each_reported_exactly_once(first, reports_path)
    assert not any(r["duplicate"] for r in read_reports(reports_path))

    # 2. The cluster is SIGKILLed in the middle of a batch: tasks it had popped are gone and
    #    calls it had claimed are left in flight.
    second = confirm_batch(30)
    delivered_before = len(read_reports(reports_path))
    wait_until(
        lambda: len(read_reports(reports_path)) >= delivered_before + 5,
        "the cluster has started on the second batch",
        cluster,
    )
    cluster.kill()
    left_over = call_states(second)
    assert left_over[CallState.SUCCEEDED] < len(second), "the kill came too late to test much"

    # 3. With no cluster running, tasks of a third batch are dropped from Redis (a flushed or
    #    failed-over broker).
    third = confirm_batch(5)
    broker = get_broker(queue_name)
    assert broker.queue_size() >= len(third)
    broker.delete_queue()
    assert call_states(third) == Counter({CallState.PENDING: len(third)})

    # 4. A new cluster and the sweep (as its schedule would) deliver everything left.
    cluster = start_cluster()
    everything = first + second + third

    def swept_and_done() -> bool:
        tasks.sweep_outbox()
        return all_succeeded(everything)

    # In-flight calls become sweepable CLAIM_TIMEOUT seconds after their claim.
    time.sleep(CLAIM_TIMEOUT)
    wait_until(swept_and_done, "the sweep has delivered every call", cluster)
    assert_each_reported_exactly_once(everything, reports_path)

    # 5. Once all is delivered, further sweeps send nothing more.
    before = read_reports(reports_path)
    assert tasks.sweep_outbox() == 0
    time.sleep(1)
    assert read_reports(reports_path) == before


def test_a_real_cluster_delivers_an_expiry_batch_handed_over_in_tasks_of_several_calls(
    enqueue_to_redis, start_cluster, reports_path, queue_name
):
    from django_q.brokers import get_broker

    messages = [make_message(provider="recording") for _ in range(40)]
    Message.objects.filter(pk__in=[m.pk for m in messages]).update(
        feedback_deadline=timezone.now() - timedelta(minutes=1)
    )
    assert services.expire_overdue() == 40
    # Fewer tasks than calls: tasks.deliver_calls packages, which the cluster must accept.
    assert get_broker(queue_name).queue_size() < 40
    cluster = start_cluster()
    wait_until(lambda: all_succeeded(messages), "the expiry's reports are delivered", cluster)
    assert_each_reported_exactly_once(messages, reports_path, outcome="failed")
