"""The hand-off to the task queue (feedback_app/queue.py): a confirmation reaches the provider on
either queue, django-q2 gets a batch in one round trip (Redis pipeline, one ORM insert), and a
broken queue only leaves the calls for the sweep."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from feedback_app import queue, services
from feedback_app.models import ProviderCall
from feedback_app.providers import locmem
from feedback_app.states import CallState

from .factories import make_message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_brokers():
    queue.forget_brokers()
    yield
    queue.forget_brokers()


def run_database_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """django-tasks-db's db_worker, in this process, until no task is left (its --batch)."""
    from django_tasks_db.management.commands import db_worker

    # Its connection hygiene would close the connection holding the test's transaction.
    monkeypatch.setattr(db_worker, "close_old_connections", lambda: None)
    db_worker.Worker(
        queue_names=["default"],
        interval=0,
        batch=True,
        backend_name="database",
        startup_delay=False,
        max_tasks=None,
        worker_id="test-worker",
        excluded_queue_names=[],
    ).run()


@pytest.mark.parametrize(
    ("choice", "backend"),
    [
        pytest.param("django_q", None, marks=pytest.mark.django_q, id="django_q"),
        pytest.param("django_tasks", "default", id="django_tasks-immediate"),
        pytest.param("django_tasks", "database", id="django_tasks-database-worker"),
    ],
)
def test_a_confirmation_is_reported_to_the_provider_on_each_queue(
    settings, monkeypatch, django_capture_on_commit_callbacks, choice, backend
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "QUEUE": choice}
    if backend:
        settings.FEEDBACK_APP["TASKS_BACKEND"] = backend
    message = make_message()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.confirm(message) is True
    call = ProviderCall.objects.get(message=message)

    if backend == "database":
        from django_tasks_db.models import DBTaskResult

        # Handed over, not yet run: the task waits in the backend's table for its worker.
        assert call.state == CallState.PENDING
        task = DBTaskResult.objects.get()
        assert (task.task_path, task.args_kwargs["args"]) == (
            "feedback_app.tasks_django.deliver_call",
            [call.pk],
        )
        run_database_worker(monkeypatch)
        task.refresh_from_db()
        assert task.status == "SUCCESSFUL"

    call.refresh_from_db()
    assert (call.state, call.attempts) == (CallState.SUCCEEDED, 1)
    assert [r["outcome"] for r in locmem.reports] == ["confirmed"]


def test_a_database_backend_gets_a_batch_in_one_transaction(settings):
    from django_tasks_db.models import DBTaskResult

    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "QUEUE": "django_tasks",
        "TASKS_BACKEND": "database",
    }
    with CaptureQueriesContext(connection) as queries:
        assert queue.enqueue([11, 12, 13]) == 3
    assert sorted(t.args_kwargs["args"][0] for t in DBTaskResult.objects.all()) == [11, 12, 13]
    savepoints = [q["sql"] for q in queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == 1  # one atomic block (a savepoint inside the test's transaction)


def test_nothing_to_hand_over_touches_no_queue(settings, monkeypatch):
    monkeypatch.setattr(queue, "_enqueue_django_q", lambda ids: pytest.fail("enqueued"))
    monkeypatch.setattr(queue, "_enqueue_django_tasks", lambda ids: pytest.fail("enqueued"))
    assert queue.enqueue([]) == 0
    assert queue.enqueue(iter(())) == 0


# django-q2: a batch per round trip ------------------------------------------------------------


@pytest.fixture
def django_q_broker(monkeypatch):
    """django-q2 as deployed (not the tests' sync mode)."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", False)
    return Conf


def unpack(package: bytes | str) -> dict:
    from django_q.signing import SignedPackage

    return SignedPackage.loads(package)


@pytest.mark.django_q
def test_the_orm_broker_gets_a_batch_in_one_insert(django_q_broker, monkeypatch, settings):
    from django_q.models import OrmQ

    monkeypatch.setattr(django_q_broker, "ORM", "default")
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback_batch"}
    ids = list(range(1, 301))
    with CaptureQueriesContext(connection) as queries:
        assert queue.enqueue(ids) == 300
    inserts = [q for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) <= 3  # SQLite splits by its limit on bound parameters; not 300
    rows = OrmQ.objects.filter(key="feedback_batch").order_by("pk")
    tasks = [unpack(row.payload) for row in rows]
    assert [task["args"] for task in tasks] == [(call_id,) for call_id in ids]
    assert {task["func"] for task in tasks} == {queue.DJANGO_Q_DELIVER}
    assert len({task["id"] for task in tasks}) == 300


@pytest.mark.django_q
@pytest.mark.redis
def test_the_redis_broker_gets_a_batch_in_one_pipeline(django_q_broker, monkeypatch, settings):
    from redis.client import Pipeline

    monkeypatch.setattr(django_q_broker, "ORM", None)
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback_batch_test"}
    broker = queue.get_broker()
    broker.delete_queue()
    executed = []
    execute = Pipeline.execute
    monkeypatch.setattr(
        Pipeline, "execute", lambda self, *a, **k: executed.append(1) or execute(self, *a, **k)
    )
    try:
        assert queue.enqueue(range(1, 2501)) == 2500
        assert executed == [1]  # one round trip for 2,500 tasks
        assert broker.queue_size() == 2500
        first, last = broker.dequeue()[0][1], broker.connection.rpop(broker.list_key)
        assert unpack(first)["args"] == (1,)
        assert unpack(last)["args"] == (2500,)
    finally:
        broker.delete_queue()


@pytest.mark.django_q
def test_a_redis_broker_that_is_down_leaves_the_batch_to_the_sweep(
    django_q_broker, monkeypatch, settings, caplog, django_capture_on_commit_callbacks
):
    # Nothing listens on port 9 here: the pipeline's one round trip fails.
    monkeypatch.setattr(django_q_broker, "ORM", None)
    monkeypatch.setattr(django_q_broker, "REDIS", "redis://127.0.0.1:9/0")
    message = make_message()
    with django_capture_on_commit_callbacks(execute=True):
        assert services.confirm(message) is True
    assert "could not enqueue" in caplog.text
    call = ProviderCall.objects.get(message=message)
    assert (call.state, call.attempts) == (CallState.PENDING, 0)
    assert queue._broker.cache_info().currsize == 0  # rebuilt (reconnected) next time
