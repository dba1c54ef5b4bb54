"""The hand-off to the task queue (feedback_app/queue.py): a confirmation reaches the provider on
either queue, django-q2 gets a batch in one round trip (Redis pipeline, one ORM insert) of tasks
of a few calls each, and a broken queue only leaves the calls for the sweep."""

from __future__ import annotations

import pytest
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext

from feedback_app import outbox, queue, services, tasks
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


def delivered_calls(task: dict) -> list[int]:
    """The call ids a django-q2 task package delivers (one call, or a few in order)."""
    (arg,) = task["args"]
    if task["func"] == queue.DJANGO_Q_DELIVER:
        return [arg]
    assert task["func"] == queue.DJANGO_Q_DELIVER_MANY
    return list(arg)


@pytest.mark.django_q
def test_the_orm_broker_gets_a_batch_in_one_insert(django_q_broker, monkeypatch, settings):
    from django_q.models import OrmQ

    monkeypatch.setattr(django_q_broker, "ORM", "default")
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback_batch"}
    ids = list(range(1, 301))
    with CaptureQueriesContext(connection) as queries:
        assert queue.enqueue(ids) == 300
    inserts = [q for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1
    rows = OrmQ.objects.filter(key="feedback_batch").order_by("pk")
    tasks = [unpack(row.payload) for row in rows]
    # Tasks of DJANGO_Q_CALLS_PER_TASK calls, every call once, in the order handed over.
    assert len(tasks) == 300 // queue.DJANGO_Q_CALLS_PER_TASK
    assert [c for task in tasks for c in delivered_calls(task)] == ids
    assert {task["func"] for task in tasks} == {queue.DJANGO_Q_DELIVER_MANY}
    assert len({task["id"] for task in tasks}) == len(tasks)


@pytest.mark.django_q
@pytest.mark.parametrize(
    ("calls", "workers", "sizes"),
    [
        (1, 4, [1]),  # a confirmation: one task of one call, as always
        (3, 4, [1, 1, 1]),  # fewer calls than workers: a task each, delivered in parallel
        (10, 4, [3, 3, 3, 1]),  # spread over the workers
        (60, 2, [25, 25, 10]),  # at most DJANGO_Q_CALLS_PER_TASK per task
    ],
)
def test_a_hand_off_is_spread_over_the_workers_in_tasks_of_a_few_calls(
    django_q_broker, monkeypatch, settings, calls, workers, sizes
):
    from django_q.models import OrmQ

    monkeypatch.setattr(django_q_broker, "ORM", "default")
    monkeypatch.setattr(django_q_broker, "WORKERS", workers)
    monkeypatch.setattr(queue, "DJANGO_Q_CALLS_PER_TASK", 25)
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback_spread"}
    assert queue.enqueue(range(1, calls + 1)) == calls
    tasks = [unpack(row.payload) for row in OrmQ.objects.order_by("pk")]
    assert [len(delivered_calls(task)) for task in tasks] == sizes
    assert [c for task in tasks for c in delivered_calls(task)] == list(range(1, calls + 1))
    single = [task for task in tasks if task["func"] == queue.DJANGO_Q_DELIVER]
    assert all(isinstance(task["args"][0], int) for task in single)


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
        assert executed == [1]  # one round trip for 2,500 calls
        tasks = 2500 // queue.DJANGO_Q_CALLS_PER_TASK
        assert broker.queue_size() == tasks
        first, last = broker.dequeue()[0][1], broker.connection.rpop(broker.list_key)
        assert delivered_calls(unpack(first))[0] == 1
        assert delivered_calls(unpack(last))[-1] == 2500
    finally:
        broker.delete_queue()


@pytest.mark.django_q
@pytest.mark.redis
def test_the_redis_broker_gets_one_task_in_one_rpush(django_q_broker, monkeypatch, settings):
    monkeypatch.setattr(django_q_broker, "ORM", None)
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback_one_test"}
    broker = queue.get_broker()
    broker.delete_queue()
    try:
        assert queue.enqueue([7]) == 1
        assert broker.queue_size() == 1
        task = unpack(broker.dequeue()[0][1])
        assert (task["func"], task["args"]) == (queue.DJANGO_Q_DELIVER, (7,))
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


# django-q2: the task of a few calls -----------------------------------------------------------


def pending_calls(count: int) -> list[int]:
    """Ids of ``count`` report calls written and committed, not yet handed to any queue."""
    ids = []
    for _ in range(count):
        message = make_message()
        assert services.confirm(message) is True  # the test's on-commit hooks never run
        ids.append(ProviderCall.objects.get(message=message).pk)
    return ids


def test_a_task_of_several_calls_delivers_each_once_in_order():
    ids = pending_calls(3)
    done = ProviderCall.objects.get(pk=ids[1])
    assert outbox.deliver(done.pk) == CallState.SUCCEEDED  # a sweep's task was faster
    assert tasks.deliver_calls(ids) == {"succeeded": 2, "skipped": 1}
    assert set(ProviderCall.objects.values_list("state", flat=True)) == {CallState.SUCCEEDED}
    pmids = dict(ProviderCall.objects.values_list("pk", "message__provider_message_id"))
    assert [r["provider_message_id"] for r in locmem.reports] == [
        pmids[ids[1]],
        pmids[ids[0]],
        pmids[ids[2]],
    ]


def test_one_calls_error_is_logged_and_the_others_are_still_delivered(monkeypatch, caplog):
    ids = pending_calls(3)
    deliver = outbox.deliver

    def database_gone_for_the_second(call_id: int) -> str | None:
        if call_id == ids[1]:
            raise OperationalError("server closed the connection unexpectedly")
        return deliver(call_id)

    monkeypatch.setattr(outbox, "deliver", database_gone_for_the_second)
    assert tasks.deliver_calls(ids) == {"succeeded": 2, "error": 1}
    assert f"delivering call {ids[1]} failed" in caplog.text
    # Left in the outbox, where the sweep finds it.
    assert ProviderCall.objects.get(pk=ids[1]).state == CallState.PENDING


def test_a_slow_batch_hands_its_remaining_calls_back_well_before_the_task_timeout(monkeypatch):
    ids = pending_calls(5)
    now = [1000.0]
    deliver = outbox.deliver

    def slow_deliver(call_id: int) -> str | None:
        now[0] += 12  # the provider takes 12 s per call
        return deliver(call_id)

    handed_back: list[list[int]] = []
    monkeypatch.setattr(tasks.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(outbox, "deliver", slow_deliver)
    monkeypatch.setattr(tasks.queue, "enqueue", lambda rest: handed_back.append(rest) or 0)
    monkeypatch.setattr(tasks, "_time_limit", lambda: 60.0)
    # Within half the limit (30 s) with room for the slowest call so far: two calls, 24 s.
    assert tasks.deliver_calls(ids) == {"succeeded": 2, "handed_back": 3}
    assert now[0] - 1000 == 24
    assert handed_back == [ids[2:]]
    states = dict(ProviderCall.objects.values_list("pk", "state"))
    assert [states[i] for i in ids] == [CallState.SUCCEEDED] * 2 + [CallState.PENDING] * 3


@pytest.mark.django_q
def test_the_time_limit_is_the_clusters_timeout_then_retry(django_q_broker, monkeypatch):
    monkeypatch.setattr(django_q_broker, "TIMEOUT", 60)
    monkeypatch.setattr(django_q_broker, "RETRY", 120)
    assert tasks._time_limit() == 60
    monkeypatch.setattr(django_q_broker, "TIMEOUT", None)
    assert tasks._time_limit() == 120
