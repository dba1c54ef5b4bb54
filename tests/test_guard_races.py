"""Concurrent sends at a guard limit never pass it, and concurrent blocks of one prefix make one
block (PostgreSQL + Redis, threads).

Each thread has its own database connection and its own Redis connection; the counters are
Redis INCRs, so whatever the interleaving exactly ``max`` sends go through.
"""

from __future__ import annotations

import os
import threading
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from feedback_app import blocks, services
from feedback_app.errors import SendBlocked
from feedback_app.models import BlockedSend, GuardBlock, Message
from feedback_app.providers import locmem

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("window_start"),
]

THREADS = 16


def redis_guard(**guard):
    # A key prefix of its own: the server is shared, and clear() would flush the whole db.
    caches = {
        **settings.CACHES,
        "guard": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "KEY_PREFIX": f"test-guard-{uuid.uuid4().hex}",
        },
    }
    return override_settings(
        CACHES=caches,
        FEEDBACK_APP={**settings.FEEDBACK_APP, "GUARD": {"CACHE": "guard", **guard}},
    )


def send_together(numbers: list[str]) -> tuple[int, list[str]]:
    """Send to each number in its own thread, all released at once: (sent, refusal codes)."""
    barrier = threading.Barrier(len(numbers))
    sent, refused, errors = [], [], []

    def worker(to: str) -> None:
        try:
            barrier.wait(timeout=30)
            try:
                services.send(provider="locmem", to=to, body="code 123456")
            except SendBlocked as refusal:
                refused.append(refusal.code)
            else:
                sent.append(to)
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(to,)) for to in numbers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return len(sent), refused


def test_concurrent_sends_to_one_number_never_exceed_its_limit():
    with redis_guard(RECIPIENT_LIMIT=[5, 600]):
        sent, refused = send_together(["+4915123456789"] * THREADS)
    assert sent == 5 == Message.objects.count() == len(locmem.outbox)
    assert refused == ["recipient_rate"] * (THREADS - 5)
    assert BlockedSend.objects.count() == THREADS - 5


def test_concurrent_sends_to_one_prefix_never_exceed_its_limit():
    numbers = [f"+49151234567{index:02d}" for index in range(THREADS)]
    with redis_guard(RECIPIENT_LIMIT=None, PREFIX_LIMIT=[7, 600]):
        sent, refused = send_together(numbers)
    assert sent == 7 == Message.objects.count()
    assert refused == ["prefix_rate"] * (THREADS - 7)


def test_concurrent_blocks_of_one_prefix_create_one_block():
    barrier = threading.Barrier(THREADS)
    created, errors = [], []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            block, was_created = blocks.block("prefix", "+2347", reason="pumping", actor="guard")
            created.append((block.pk, was_created))
        except BaseException as exc:  # reported in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    (block,) = GuardBlock.objects.filter(kind="prefix", value="+2347")
    assert sorted(was_created for _, was_created in created) == [False] * (THREADS - 1) + [True]
    assert {pk for pk, _ in created} == {block.pk}
