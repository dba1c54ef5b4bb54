"""Concurrent confirm / fail / expire / record_delivery on the same messages (PostgreSQL).

Threads start together at a barrier, each on its own database connection. Whatever the
interleaving, every call's answer must agree with the recorded history: one event per True, none
lost, none doubled, and every history a path through the state machine.
"""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import locmem
from feedback_app.states import (
    DELIVERY_RANK,
    LATE_FROM,
    TRANSITIONS,
    CallState,
    Delivery,
    EventKind,
    Feedback,
)

from .factories import make_message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

THREADS = 8
ROUNDS = 4


def run_together(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run each call in its own thread, all released at once; their results, in order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=item) for item in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert not errors, errors
    return results


def overdue_messages(count: int) -> list[Message]:
    """Messages whose deadline has passed, so expire_overdue() takes them."""
    sent = timezone.now() - timedelta(hours=1)
    return [make_message(sent_at=sent) for _ in range(count)]


def feedback_history(pk) -> list[tuple[str, str]]:
    # Insertion order (pk), not created_at: a call's ``at`` is taken before it waits for a lock.
    return list(
        MessageEvent.objects.filter(message_id=pk, kind=EventKind.FEEDBACK)
        .order_by("pk")
        .values_list("from_value", "to_value")
    )


def assert_history_is_a_path(pk) -> list[tuple[str, str]]:
    """Each event continues from the one before, by an allowed transition, up to the state."""
    history = feedback_history(pk)
    state = Feedback.PENDING
    for from_value, to_value in history:
        assert from_value == state, history
        assert from_value in TRANSITIONS[to_value], history
        state = to_value
    message = Message.objects.get(pk=pk)
    assert message.feedback == state
    if state == Feedback.CONFIRMED:
        late = history[-1][0] in LATE_FROM or message.confirmed_at > message.feedback_deadline
        assert message.confirmed_late is late
    return history


def assert_one_live_report_per_outcome(pk) -> None:
    live = Counter(
        call.payload["outcome"]
        for call in ProviderCall.objects.filter(message_id=pk).exclude(state=CallState.SUPERSEDED)
    )
    assert all(count == 1 for count in live.values()), live


def test_two_concurrent_confirms_never_both_return_true():
    for _ in range(ROUNDS * 2):
        message = make_message()
        results = run_together([lambda pk=message.pk: services.confirm(pk)] * 2)
        assert sorted(results) == [False, True]
        assert feedback_history(message.pk) == [(Feedback.PENDING, Feedback.CONFIRMED)]


def test_many_concurrent_confirms_confirm_once_and_report_once():
    for _ in range(ROUNDS):
        message = make_message()
        results = run_together([lambda pk=message.pk: services.confirm(pk)] * THREADS)
        assert results.count(True) == 1
        assert feedback_history(message.pk) == [(Feedback.PENDING, Feedback.CONFIRMED)]
        calls = ProviderCall.objects.filter(message=message)
        assert [call.payload for call in calls] == [{"outcome": "confirmed"}]
        # Delivered on commit (the test queue runs inline), exactly once.
        assert calls.get().state == CallState.SUCCEEDED
        reported = [
            r for r in locmem.reports if r["provider_message_id"] == message.provider_message_id
        ]
        assert [r["outcome"] for r in reported] == ["confirmed"]


def test_concurrent_fail_and_expire_make_exactly_one_transition_out_of_pending():
    for _ in range(ROUNDS):
        messages = overdue_messages(3)
        calls: list[Callable[[], Any]] = []
        for _ in range(THREADS // 2):
            calls.append(lambda: ("expire", services.expire_overdue()))
        for message in messages:
            calls.append(lambda pk=message.pk: ("fail", pk, services.fail(pk)))
        random.shuffle(calls)
        results = run_together(calls)
        expired = sum(result[1] for result in results if result[0] == "expire")
        for message in messages:
            history = assert_history_is_a_path(message.pk)
            assert len(history) == 1
            fail_result = next(r[2] for r in results if r[0] == "fail" and r[1] == message.pk)
            assert fail_result is (history == [(Feedback.PENDING, Feedback.FAILED)])
            assert_one_live_report_per_outcome(message.pk)
        assert (
            expired
            == MessageEvent.objects.filter(message__in=messages, to_value=Feedback.EXPIRED).count()
        )


def test_concurrent_confirm_fail_and_expire_agree_with_the_recorded_events():
    for _ in range(ROUNDS):
        messages = overdue_messages(3)
        calls: list[Callable[[], Any]] = []
        for message in messages:
            calls += [
                lambda pk=message.pk: ("confirm", pk, services.confirm(pk)),
                lambda pk=message.pk: ("confirm", pk, services.confirm(str(pk))),
                lambda pk=message.pk: ("fail", pk, services.fail(pk)),
            ]
        calls += [lambda: ("expire", None, services.expire_overdue())] * 3
        random.shuffle(calls)
        results = run_together(calls)

        true_results: Counter = Counter()
        expired_total = 0
        for operation, pk, result in results:
            if operation == "expire":
                expired_total += result
            elif result:
                true_results[(pk, operation)] += 1
        for message in messages:
            history = assert_history_is_a_path(message.pk)
            targets = Counter(to_value for _, to_value in history)
            # None lost, none doubled.
            assert true_results[(message.pk, "confirm")] == targets[Feedback.CONFIRMED]
            assert true_results[(message.pk, "fail")] == targets[Feedback.FAILED]
            assert targets[Feedback.CONFIRMED] <= 1
            # Each call was made while the message was open, so someone confirmed it.
            assert history[-1][1] == Feedback.CONFIRMED
            message.refresh_from_db()
            # Overdue, so every confirmation is late whichever way it came.
            assert message.confirmed_late is True
            assert_one_live_report_per_outcome(message.pk)
        assert (
            expired_total
            == MessageEvent.objects.filter(message__in=messages, to_value=Feedback.EXPIRED).count()
        )


def test_concurrent_confirms_of_one_message_after_it_expired_or_failed_return_true_once():
    for start in (Feedback.EXPIRED, Feedback.FAILED):
        for _ in range(ROUNDS // 2):
            (message,) = overdue_messages(1)
            if start == Feedback.EXPIRED:
                assert services.expire_overdue() >= 1
            else:
                assert services.fail(message.pk) is True
            results = run_together([lambda pk=message.pk: services.confirm(pk)] * THREADS)
            assert results.count(True) == 1
            assert feedback_history(message.pk) == [
                (Feedback.PENDING, start),
                (start, Feedback.CONFIRMED),
            ]
            assert_one_live_report_per_outcome(message.pk)


def test_concurrent_out_of_order_delivery_statuses_end_at_the_highest_rank():
    statuses = [s for s in Delivery.values if s != Delivery.QUEUED]
    for _ in range(ROUNDS):
        message = make_message()
        order = [*statuses, *random.sample(statuses, THREADS - len(statuses))]
        random.shuffle(order)
        results = run_together(
            [lambda pk=message.pk, s=s: services.record_delivery(pk, s) for s in order]
        )
        message.refresh_from_db()
        assert message.delivery_status == Delivery.DELIVERED
        assert message.delivered_at is not None
        events = list(
            MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
            .order_by("pk")
            .values_list("from_value", "to_value")
        )
        # The first is the tracking; then one per True, each strictly higher than the last.
        assert events[0] == ("", Delivery.QUEUED)
        assert len(events) - 1 == results.count(True)
        for (_, previous), (from_value, to_value) in itertools.pairwise(events):
            assert from_value == previous
            assert DELIVERY_RANK[to_value] > DELIVERY_RANK[from_value]
        # Each status that changed the message returned True exactly once.
        changed_to = [to_value for _, to_value in events[1:]]
        true_statuses = [s for s, r in zip(order, results, strict=True) if r]
        assert sorted(changed_to) == sorted(true_statuses)


def test_concurrent_refinements_of_one_status_are_recorded_once():
    """TEXT_DELIVERED refining TEXT_SUCCESSFUL, delivered by SNS to several web workers at once
    (SNS retries; a duplicate can slip past the dedupe cache): one provider event, the final
    provider status, and the delivery status never moves."""
    for _ in range(ROUNDS):
        message = make_message(provider="locmem")
        assert services.record_delivery(
            message, Delivery.DELIVERED, provider_status="TEXT_SUCCESSFUL"
        )
        results = run_together(
            [
                lambda pk=message.pk: services.record_delivery(
                    pk,
                    Delivery.DELIVERED,
                    provider_status="TEXT_DELIVERED",
                    detail={"isFinal": True},
                    supersedes={"TEXT_SUCCESSFUL"},
                )
                for _ in range(THREADS)
            ]
        )
        assert results == [False] * THREADS  # the delivery status did not change
        message.refresh_from_db()
        assert (message.delivery_status, message.provider_status) == (
            Delivery.DELIVERED,
            "TEXT_DELIVERED",
        )
        assert MessageEvent.objects.filter(message=message, kind=EventKind.PROVIDER).count() == 1
        assert MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY).count() == 2
