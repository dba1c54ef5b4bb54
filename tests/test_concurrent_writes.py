"""Concurrent writers must not fail: SQLite (the embedded default, IMMEDIATE transactions) and
PostgreSQL alike."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message, MessageEvent
from feedback_app.states import EventKind, Feedback

from .factories import make_message

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_confirms_fails_and_expiry_never_hit_database_is_locked():
    now = timezone.now()
    messages = [make_message(sent_at=now - timedelta(minutes=i)) for i in range(40)]
    errors: list[BaseException] = []
    results: list[tuple[str, bool]] = []
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            for message in messages:
                if index == 0:
                    services.expire_overdue(now=now + timedelta(minutes=5))
                action = services.confirm if index % 2 else services.fail
                results.append((str(message.pk), action(str(message.pk))))
        except BaseException as exc:  # noqa: BLE001  (collected and asserted below)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    changed = sum(1 for _, ok in results if ok)
    events = MessageEvent.objects.filter(kind=EventKind.FEEDBACK).count()
    assert events == changed + MessageEvent.objects.filter(to_value=Feedback.EXPIRED).count()
    assert set(Message.objects.values_list("feedback", flat=True)) <= {
        Feedback.CONFIRMED,
        Feedback.FAILED,
        Feedback.EXPIRED,
    }
