"""The hand-off of provider calls to the task queue FEEDBACK_APP["QUEUE"] names.

``"django_q"`` (the default) is django-q2; ``"django_tasks"`` is Django's ``django.tasks`` (the
django-tasks backport on Django 5.2) with whatever TASKS backend the project configured. This is
the only module that talks to either, and it imports a queue's package only when that queue is
the chosen one. A hand-off is a speed-up, not the record: a failure leaves the calls to the sweep.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import uuid
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from django.core.signals import setting_changed
from django.db import router, transaction
from django.utils import timezone

from .conf import app_settings

logger = logging.getLogger(__name__)

DJANGO_Q = "django_q"
DJANGO_TASKS = "django_tasks"
#: The values QUEUE takes.
QUEUES = (DJANGO_Q, DJANGO_TASKS)

#: The django-q2 task that delivers one call (a dotted path, signed into each task package).
DJANGO_Q_DELIVER = "feedback_app.tasks.deliver_call"
#: The django-q2 task that delivers a few calls one after another (a hand-off of many calls).
DJANGO_Q_DELIVER_MANY = "feedback_app.tasks.deliver_calls"
#: Calls per django-q2 task at most. A package costs ~25 us to build and sign, so one per call
#: made the hand-off of an expiry batch cost as much as its UPDATE; a few dozen per task make it
#: negligible, and a task of them still ends in seconds (tasks.deliver_calls hands calls back
#: before it nears the cluster's timeout).
DJANGO_Q_CALLS_PER_TASK = 25
#: Values per RPUSH: one command stays small, and the pipeline still sends them all at once.
_REDIS_CHUNK = 1000


def enqueue(call_ids: Iterable[int]) -> int:
    """Hand calls to the chosen queue, a whole batch per round trip where the queue allows it.

    Returns how many were handed over. A failure is logged, not raised: the calls stay in the
    outbox and the sweep hands them over again.
    """
    ids = list(call_ids)
    if not ids:
        return 0
    try:
        if app_settings.QUEUE == DJANGO_TASKS:
            return _enqueue_django_tasks(ids)
        return _enqueue_django_q(ids)
    except Exception:  # queue down or misconfigured: the outbox rows stay for the sweep
        logger.warning("feedback_app: could not enqueue provider calls", exc_info=True)
        # Build it again next time, so a broker that was down (or is broken) reconnects.
        forget_brokers()
        return 0


# django-q2 -----------------------------------------------------------------------------------


@functools.cache
def _broker(cluster: str | None) -> Any:
    from django_q.brokers import get_broker as build_broker

    return build_broker(cluster)


def get_broker() -> Any:
    """The process's django-q2 broker for DJANGO_Q_CLUSTER, built on first use: a Redis broker
    is a connection pool, too costly to build per confirmation (redis-py reconnects after fork)."""
    return _broker(app_settings.DJANGO_Q_CLUSTER)


def forget_brokers(**kwargs: Any) -> None:
    """Drop the cached brokers; the next enqueue connects afresh (also on a settings change)."""
    if kwargs.get("setting") in (None, "FEEDBACK_APP", "Q_CLUSTER"):
        _broker.cache_clear()


setting_changed.connect(forget_brokers)


def _enqueue_django_q(ids: list[int]) -> int:
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf

    broker = get_broker()
    batches = _task_batches(ids, int(Conf.WORKERS))
    if not Conf.SYNC:  # sync mode runs each task inline, in async_task
        if isinstance(broker, ORM):
            _push_orm(broker, _django_q_packages(batches))
            return len(ids)
        if _is_redis(broker):
            _push_redis(broker, _django_q_packages(batches))
            return len(ids)
    # Another broker (SQS, IronMQ, a custom one): one task at a time, as django-q2 offers.
    from django_q.tasks import async_task

    count = 0
    for batch in batches:
        func, args = _task_of(batch)
        async_task(func, args, broker=broker)
        count += len(batch)
    return count


def _task_batches(ids: list[int], workers: int) -> list[list[int]]:
    """The calls of each task: up to DJANGO_Q_CALLS_PER_TASK, but spread over at least as many
    tasks as the cluster has workers, so a small hand-off is still delivered in parallel."""
    size = max(1, min(DJANGO_Q_CALLS_PER_TASK, math.ceil(len(ids) / max(workers, 1))))
    return [ids[start : start + size] for start in range(0, len(ids), size)]


def _task_of(batch: list[int]) -> tuple[str, int | tuple[int, ...]]:
    """The task and its one argument: a single call keeps the task it always had."""
    if len(batch) == 1:
        return DJANGO_Q_DELIVER, batch[0]
    return DJANGO_Q_DELIVER_MANY, tuple(batch)


def _is_redis(broker: Any) -> bool:
    try:
        from django_q.brokers.redis_broker import Redis
    except ImportError:  # no redis package, so no Redis broker either
        return False
    return isinstance(broker, Redis)


def _django_q_packages(batches: list[list[int]]) -> list[str]:
    """The signed packages ``django_q.tasks.async_task`` would push, one per task.

    The same task dict, signal and signature (``SignedPackage.dumps`` is ``signing.dumps`` with
    django-q2's key and salt), with two savings: one signer for the hand-off, and a plain uuid4
    instead of django-q2's human-readable name for each task.
    """
    from django.core.signing import TimestampSigner
    from django_q.conf import Conf
    from django_q.signals import pre_enqueue
    from django_q.signing import PickleSerializer

    signer = TimestampSigner(key=Conf.SECRET_KEY, salt=Conf.PREFIX)
    options: dict[str, Any] = {}
    if Conf.CACHED:
        options["cached"] = Conf.CACHED
    if Conf.ACK_FAILURES:
        options["ack_failure"] = Conf.ACK_FAILURES
    packages = []
    for batch in batches:
        func, arg = _task_of(batch)
        name = (
            f"deliver_call-{batch[0]}"
            if len(batch) == 1
            else f"deliver_{len(batch)}_calls-{batch[0]}"
        )
        task: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "name": name,
            "func": func,
            "args": (arg,),
            **options,
            "kwargs": {},
            "started": timezone.now(),
        }
        pre_enqueue.send(sender="django_q", task=task)
        packages.append(
            signer.sign_object(task, serializer=PickleSerializer, compress=Conf.COMPRESSED)
        )
    return packages


def _push_redis(broker: Any, packages: list[str]) -> int:
    """All packages in one round trip: RPUSHes of many values each, in one pipeline."""
    if len(packages) == 1:
        # A confirmation's one task: a pipeline would only add its own work to the RPUSH.
        broker.connection.rpush(broker.list_key, *packages)
        logger.debug("feedback_app: enqueued %d tasks on %s", len(packages), broker.list_key)
        return len(packages)
    pipeline = broker.connection.pipeline(transaction=False)
    for start in range(0, len(packages), _REDIS_CHUNK):
        pipeline.rpush(broker.list_key, *packages[start : start + _REDIS_CHUNK])
    pipeline.execute()
    logger.debug("feedback_app: enqueued %d tasks on %s", len(packages), broker.list_key)
    return len(packages)


def _push_orm(broker: Any, packages: list[str]) -> int:
    """All packages in one INSERT, the rows ``ORM.enqueue`` writes one at a time."""
    from django_q.conf import Conf
    from django_q.models import OrmQ

    now = timezone.now()
    key = broker.list_key or Conf.CLUSTER_NAME  # OrmQ.key may not be null
    broker.get_connection().bulk_create(
        [OrmQ(key=key, payload=package, lock=now) for package in packages]
    )
    return len(packages)


# django.tasks --------------------------------------------------------------------------------


def tasks_api() -> ModuleType:
    """``django.tasks`` (Django >= 6.0), else the django-tasks backport; ImportError if neither."""
    try:
        import django.tasks as api
    except ImportError:
        import django_tasks as api
    return api


def _enqueue_django_tasks(ids: list[int]) -> int:
    from .tasks_django import deliver_call

    task = deliver_call.using(backend=app_settings.TASKS_BACKEND)
    backend = task.get_backend()
    # django.tasks has no bulk enqueue: one enqueue per call. A database backend then writes
    # the batch in one transaction, so one commit instead of one per task.
    database = _database_of(backend)
    count = 0
    with transaction.atomic(using=database) if database else contextlib.nullcontext():
        for call_id in ids:
            task.enqueue(call_id)
            count += 1
    return count


def _database_of(backend: Any) -> str | None:
    """The database alias django-tasks-db's backend writes to, None for any other backend."""
    try:
        from django_tasks_db import DatabaseBackend
        from django_tasks_db.models import DBTaskResult
    except ImportError:
        return None
    if not isinstance(backend, DatabaseBackend):
        return None
    return router.db_for_write(DBTaskResult)
