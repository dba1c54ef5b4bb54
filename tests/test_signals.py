"""message_tracked, feedback_changed and delivery_changed: sent after commit, with the right
arguments, never for a change that was rolled back or refused."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from feedback_app import outbox, services, signals
from feedback_app.models import Message, ProviderCall
from feedback_app.states import Delivery, Feedback, Source

from .factories import make_message

pytestmark = pytest.mark.django_db

SIGNALS = {
    "message_tracked": signals.message_tracked,
    "feedback_changed": signals.feedback_changed,
    "delivery_changed": signals.delivery_changed,
}


class Received(list):
    """What the receivers got: (signal name, sender, kwargs without ``signal``)."""

    def named(self, name: str) -> list[dict]:
        return [kwargs for signal, _, kwargs in self if signal == name]


@pytest.fixture
def received():
    got = Received()
    receivers = {}
    for name, signal in SIGNALS.items():

        def receiver(sender, signal, _name=name, **kwargs):
            # What the message looks like in the receiver's eyes, at the time it is called.
            message = kwargs.get("message")
            seen = {}
            if message is not None:
                seen = {"feedback": message.feedback, "delivery": message.delivery_status}
            got.append((_name, sender, {**kwargs, "seen": seen}))

        signal.connect(receiver, weak=False)
        receivers[signal] = receiver
    yield got
    for signal, receiver in receivers.items():
        signal.disconnect(receiver)


def test_message_tracked_is_sent_only_after_commit(received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        message = make_message()
        assert received == []
    assert received == []
    for callback in callbacks:
        callback()
    assert [(name, sender) for name, sender, _ in received] == [("message_tracked", Message)]
    assert received.named("message_tracked")[0]["message"] == message


def test_send_sends_message_tracked_after_commit(received, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        message = services.send(provider="locmem", to="+12015550123", body="code 1")
        assert received == []
    assert [kwargs["message"] for kwargs in received.named("message_tracked")] == [message]


@pytest.mark.parametrize(
    ("change", "old", "new", "source"),
    [
        (lambda m: services.confirm(m.pk, source=Source.API), "pending", "confirmed", "api"),
        (lambda m: services.fail(str(m.pk), source=Source.ADMIN), "pending", "failed", "admin"),
        (lambda m: services.confirm(m), "pending", "confirmed", "python"),
    ],
    ids=["confirm", "fail", "confirm-instance"],
)
def test_feedback_changed_is_sent_after_commit_with_message_old_new_and_source(
    received, django_capture_on_commit_callbacks, change, old, new, source
):
    message = make_message()
    with django_capture_on_commit_callbacks() as callbacks:
        assert change(message) is True
        assert received.named("feedback_changed") == []
    assert received.named("feedback_changed") == []
    for callback in callbacks:
        callback()
    (kwargs,) = received.named("feedback_changed")
    assert kwargs["message"].pk == message.pk
    assert (kwargs["old"], kwargs["new"], kwargs["source"]) == (old, new, source)
    assert set(kwargs) == {"message", "old", "new", "source", "seen"}


def test_delivery_changed_is_sent_after_commit_with_message_old_new_and_source(
    received, django_capture_on_commit_callbacks
):
    message = make_message()
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.record_delivery(message.pk, Delivery.SENT) is True
        assert services.record_delivery(message.pk, Delivery.DELIVERED, source=Source.POLL)
        assert services.record_delivery(message.pk, Delivery.SENT) is False
        assert received == []
    for callback in callbacks:
        callback()
    changes = [
        (kwargs["message"].pk, kwargs["old"], kwargs["new"], kwargs["source"])
        for kwargs in received.named("delivery_changed")
    ]
    assert changes == [
        (message.pk, "queued", "sent", "webhook"),
        (message.pk, "sent", "delivered", "poll"),
    ]


def test_nothing_is_sent_when_the_transaction_is_rolled_back(
    received, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            message = make_message()
            services.record_delivery(message.pk, Delivery.DELIVERED)
            services.confirm(message.pk)
            raise RuntimeError("roll back")
        with pytest.raises(RuntimeError), transaction.atomic():
            services.send(provider="locmem", to="+12015550123", body="code 2")
            raise RuntimeError("roll back")
    assert callbacks == []
    assert received == []
    assert not Message.objects.exists()


def test_refused_changes_send_nothing(received, django_capture_on_commit_callbacks):
    message = make_message()
    services.confirm(message)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert services.confirm(message) is False
        assert services.fail(message) is False
        assert services.record_delivery(message, Delivery.QUEUED) is False
        assert services.expire_overdue(now=timezone.now() + timedelta(days=1)) == 0
    assert callbacks == []
    assert received == []


def test_expire_overdue_sends_feedback_changed_for_each_expired_message(
    received, django_capture_on_commit_callbacks
):
    now = timezone.now()
    overdue = [make_message(sent_at=now - timedelta(hours=1)) for _ in range(3)]
    fresh = make_message(sent_at=now)
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.expire_overdue(now=now) == 3
        assert received.named("feedback_changed") == []
    for callback in callbacks:
        callback()
    changes = received.named("feedback_changed")
    assert sorted(kwargs["message"].pk for kwargs in changes) == sorted(m.pk for m in overdue)
    assert fresh.pk not in {kwargs["message"].pk for kwargs in changes}
    for kwargs in changes:
        assert (kwargs["old"], kwargs["new"], kwargs["source"]) == ("pending", "expired", "sweep")
        assert kwargs["seen"]["feedback"] == Feedback.EXPIRED


def test_expire_overdue_in_batches_sends_one_signal_per_expired_message(
    received, settings, django_capture_on_commit_callbacks
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "EXPIRE_BATCH": 2}
    now = timezone.now()
    overdue = [make_message(sent_at=now - timedelta(hours=1)) for _ in range(5)]
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue(now=now) == 5
    signalled = Counter(kwargs["message"].pk for kwargs in received.named("feedback_changed"))
    assert signalled == Counter(m.pk for m in overdue)


@pytest.mark.django_db(transaction=True)
def test_receivers_run_at_the_real_commit_and_see_the_new_state(received):
    """With real transactions: nothing inside the atomic block, everything at its commit."""
    with transaction.atomic():
        message = make_message()
        services.confirm(message.pk)
        services.record_delivery(message.pk, Delivery.DELIVERED)
        assert received == []
    assert [name for name, _, _ in received] == [
        "message_tracked",
        "feedback_changed",
        "delivery_changed",
    ]
    # In autocommit each call commits on its own, and its receivers run before it returns.
    other = make_message()
    assert received.named("message_tracked")[-1]["message"] == other
    assert services.confirm(str(other.pk)) is True
    assert services.record_delivery(other.pk, Delivery.SENT) is True
    feedback = received.named("feedback_changed")[-1]
    delivery = received.named("delivery_changed")[-1]
    assert feedback["message"].pk == delivery["message"].pk == other.pk
    # The message a receiver gets is in the state the signal announces.
    assert feedback["seen"]["feedback"] == feedback["new"] == Feedback.CONFIRMED
    assert delivery["seen"]["delivery"] == delivery["new"] == Delivery.SENT


@pytest.fixture
def broken_receiver():
    """A receiver of every signal that raises, as a host project's bug would."""

    def receiver(sender, **kwargs):
        raise RuntimeError("receiver bug")

    for signal in SIGNALS.values():
        signal.connect(receiver, weak=False)
    yield receiver
    for signal in SIGNALS.values():
        signal.disconnect(receiver)


@pytest.mark.django_db(transaction=True)
def test_a_raising_receiver_does_not_turn_a_committed_change_into_an_error(
    broken_receiver, received, caplog, monkeypatch
):
    queued: list[int] = []
    monkeypatch.setattr(outbox, "enqueue", lambda ids: queued.extend(ids) or len(ids))
    message = make_message()
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="feedback_app.services"):
        assert services.confirm(message) is True
        assert services.record_delivery(message, Delivery.DELIVERED) is True
    # Committed, reported once, and the other receivers still ran.
    assert services.confirm(message) is False
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED
    assert queued == list(ProviderCall.objects.filter(message=message).values_list("pk", flat=True))
    assert [name for name, _, _ in received] == [
        "message_tracked",
        "feedback_changed",
        "delivery_changed",
    ]
    errors = [r for r in caplog.records if r.name == "feedback_app.services"]
    assert len(errors) == 2
    assert "feedback_changed" in errors[0].getMessage()
    assert "delivery_changed" in errors[1].getMessage()
    assert errors[0].exc_info and "receiver bug" in str(errors[0].exc_info[1])


@pytest.mark.django_db(transaction=True)
def test_a_raising_receiver_neither_stops_expiry_nor_skips_the_enqueue(
    broken_receiver, received, settings, caplog, monkeypatch
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "EXPIRE_BATCH": 2}
    queued: list[int] = []
    monkeypatch.setattr(outbox, "enqueue", lambda ids: queued.extend(ids) or len(ids))
    now = timezone.now()
    overdue = [make_message(sent_at=now - timedelta(hours=1)) for _ in range(5)]
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="feedback_app.services"):
        assert services.expire_overdue(now=now) == 5
    assert Message.objects.filter(feedback=Feedback.EXPIRED).count() == 5
    # Every batch's report calls reached the queue.
    calls = ProviderCall.objects.filter(message__in=overdue)
    assert sorted(queued) == sorted(calls.values_list("pk", flat=True))
    assert len(queued) == 5
    # The other receivers got every expiry; the broken one was logged each time.
    assert len(received.named("feedback_changed")) == 5
    errors = [r for r in caplog.records if r.name == "feedback_app.services"]
    assert len(errors) == 5
