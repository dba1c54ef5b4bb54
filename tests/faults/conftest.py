"""Fixtures of the fault tests that run a real ``manage.py qcluster`` on Redis, in the way
tests/test_qcluster.py does: this process enqueues on a queue of the test's own, the cluster
(another process, its own settings) works it, and a recording provider logs what it received."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connection

from feedback_app.models import Message, ProviderCall
from feedback_app.states import CallState

from ..qcluster_settings import cluster_feedback_app
from ..test_qcluster import ROOT, Cluster

ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def queue_name() -> str:
    return f"feedback_fault_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def reports_path(tmp_path) -> Path:
    return tmp_path / "reports.jsonl"


@pytest.fixture
def redis_url() -> str:
    """The Redis the test and its cluster use; a test may point both at its own server."""
    return django_settings.Q_CLUSTER["redis"]


@pytest.fixture
def enqueue_to_redis(settings, monkeypatch, queue_name, reports_path, redis_url) -> Iterator[None]:
    from django_q.brokers import get_broker
    from django_q.conf import Conf

    settings.FEEDBACK_APP = cluster_feedback_app(
        settings.FEEDBACK_APP, str(reports_path), queue_name
    )
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "REDIS", redis_url)
    yield
    # A test may have stopped its own Redis for good: then there is no queue left to delete.
    with contextlib.suppress(Exception):
        get_broker(queue_name).delete_queue()


def _worker_factory(
    tmp_path: Path, queue_name: str, reports_path: Path, command: tuple[str, ...], **env: str
) -> tuple[ClusterFactory, list[Cluster]]:
    started: list[Cluster] = []

    def start(provider_delay: float = 0.1) -> Cluster:
        cluster = Cluster(
            {
                **os.environ,
                "DJANGO_SETTINGS_MODULE": "tests.faults.cluster_settings",
                "FEEDBACK_TEST_DB_NAME": connection.settings_dict["NAME"],
                "FEEDBACK_TEST_QUEUE": queue_name,
                "FEEDBACK_TEST_REPORTS": str(reports_path),
                "FEEDBACK_TEST_PROVIDER_DELAY": str(provider_delay),
                "PYTHONPATH": os.pathsep.join(
                    filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
                ),
                **env,
            },
            tmp_path / f"{command[0]}-{len(started)}.log",
            command,
        )
        started.append(cluster)
        cluster.start()
        return cluster

    return start, started


@pytest.fixture
def start_cluster(tmp_path, queue_name, reports_path, redis_url) -> Iterator[ClusterFactory]:
    """``start_cluster(provider_delay=0.1)``: a qcluster process on the test's queue."""
    start, started = _worker_factory(
        tmp_path, queue_name, reports_path, ("qcluster",), REDIS_URL=redis_url
    )
    yield start
    for cluster in started:
        cluster.kill()


@pytest.fixture
def enqueue_to_database(settings, queue_name, reports_path) -> None:
    """This process enqueues on django-tasks-db's backend (QUEUE "django_tasks")."""
    settings.FEEDBACK_APP = cluster_feedback_app(
        settings.FEEDBACK_APP, str(reports_path), queue_name, "django_tasks"
    )


@pytest.fixture
def start_db_worker(tmp_path, queue_name, reports_path) -> Iterator[ClusterFactory]:
    """``start_db_worker(provider_delay=0.1)``: django-tasks-db's ``db_worker`` process."""
    command = ("db_worker", "--backend", "database", "--no-reload", "--no-startup-delay")
    start, started = _worker_factory(
        tmp_path,
        queue_name,
        reports_path,
        (*command, "--interval", "0.1"),
        FEEDBACK_QUEUE="django_tasks",
    )
    yield start
    for worker in started:
        worker.kill()


def call_states(messages: list[Message]) -> Counter:
    return Counter(
        ProviderCall.objects.filter(message__in=messages).values_list("state", flat=True)
    )


def all_succeeded(messages: list[Message]) -> bool:
    return call_states(messages) == Counter({CallState.SUCCEEDED: len(messages)})
