"""The feedback state machine, exercised through the services only.

First every (from, to) pair of feedback states, table-driven from ``states.TRANSITIONS``; then
random sequences of confirm / fail / expire / record_delivery on a few messages, checked against
a model after every step (hypothesis stateful testing).
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from feedback_app import outbox, services
from feedback_app.models import Message, MessageEvent, ProviderCall
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

pytestmark = pytest.mark.django_db

#: A fixed start for the fake clock; every time below is an offset from it.
T0 = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)

#: The feedback window of the default purpose in tests/settings.py.
WINDOW = timedelta(seconds=600)


def _feedback_events(message: Message) -> list[tuple[str, str]]:
    return list(
        MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK)
        .order_by("pk")
        .values_list("from_value", "to_value")
    )


def _resend(message: Message) -> Message:
    """Another message of ``message``'s verification (every message here has one)."""
    return make_message(sent_at=T0, verification=f"attempt-{message.provider_message_id}")


def _bring_to(state: str) -> tuple[Message, datetime]:
    """A message sent at T0 and moved to ``state`` through the services; and when that was."""
    provider_message_id = f"SM{uuid.uuid4().hex}"
    message = make_message(
        sent_at=T0,
        provider_message_id=provider_message_id,
        verification=f"attempt-{provider_message_id}",
    )
    deadline = T0 + WINDOW
    if state == Feedback.PENDING:
        return message, T0
    if state == Feedback.CONFIRMED:
        at = T0 + timedelta(seconds=1)
        assert services.confirm(message, at=at) is True
    elif state == Feedback.FAILED:
        at = T0 + timedelta(seconds=1)
        assert services.fail(message, at=at) is True
    elif state == Feedback.EXPIRED:
        at = deadline + timedelta(seconds=1)
        assert services.expire_overdue(now=at) == 1
    elif state == Feedback.SUPERSEDED:
        at = T0 + timedelta(seconds=1)
        assert services.confirm(_resend(message), at=at) is True
    else:  # pragma: no cover - a new state needs a way in here
        raise AssertionError(f"no way to reach {state}")
    message.refresh_from_db()
    assert message.feedback == state
    return message, at


def _apply(target: str, message: Message, at: datetime) -> bool:
    """Ask the services to move ``message`` to ``target``; True when they say it moved."""
    if target == Feedback.CONFIRMED:
        return services.confirm(message, at=at)
    if target == Feedback.FAILED:
        return services.fail(message, at=at)
    if target == Feedback.EXPIRED:
        count = services.expire_overdue(now=at)
        assert count in (0, 1)
        return count == 1
    if target == Feedback.SUPERSEDED:
        # A resend is confirmed; the message moves if the table allows it.
        before = Message.objects.get(pk=message.pk).feedback
        services.confirm(_resend(message), at=at)
        return before != Message.objects.get(pk=message.pk).feedback
    raise AssertionError(f"no service moves a message to {target}")  # pragma: no cover


ALL_PAIRS = list(itertools.product(Feedback.values, TRANSITIONS))


def test_pending_is_never_a_target_and_every_target_has_a_service():
    assert Feedback.PENDING not in TRANSITIONS
    assert set(TRANSITIONS) == set(Feedback.values) - {Feedback.PENDING}
    # Confirmed is final: no transition leaves it.
    assert all(Feedback.CONFIRMED not in sources for sources in TRANSITIONS.values())


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=[f"{a}->{b}" for a, b in ALL_PAIRS])
def test_each_transition_is_applied_exactly_when_the_table_allows_it(current, target):
    allowed = current in TRANSITIONS[target]
    message, reached_at = _bring_to(current)
    deadline = T0 + WINDOW
    # Expiry needs the deadline behind it; the others act one second after the last change.
    at = max(reached_at, deadline if target == Feedback.EXPIRED else T0) + timedelta(seconds=1)
    before = _feedback_events(message)
    calls_before = ProviderCall.objects.filter(message=message).count()

    changed = _apply(target, message, at)

    assert changed is allowed
    message.refresh_from_db()
    after = _feedback_events(message)
    if allowed:
        assert message.feedback == target
        assert after == [*before, (current, target)]
        # The outcome is reported once (locmem takes both confirmed and failed; a superseded
        # message not delivered is failed, once: the expiry's report stands).
        calls = ProviderCall.objects.filter(message=message).order_by("pk")
        reported = target == Feedback.SUPERSEDED and current == Feedback.EXPIRED
        assert calls.count() == calls_before + (0 if reported else 1)
        expected_outcome = "confirmed" if target == Feedback.CONFIRMED else "failed"
        assert calls.last().payload == {"outcome": expected_outcome}
        assert calls.last().state == CallState.PENDING
        assert not calls.exclude(pk=calls.last().pk).filter(state=CallState.PENDING).exists()
    else:
        assert message.feedback == current
        assert after == before
        assert ProviderCall.objects.filter(message=message).count() == calls_before
    if message.feedback == Feedback.CONFIRMED:
        came_from = after[-1][0]
        assert message.confirmed_late is (came_from in LATE_FROM or message.confirmed_at > deadline)
    else:
        assert message.confirmed_late is False
        assert message.confirmed_at is None


@pytest.mark.parametrize("current", Feedback.values)
def test_refused_transitions_leave_no_trace(current):
    """Every refused call writes neither an event nor a provider call, whatever it targets."""
    message, reached_at = _bring_to(current)
    events = _feedback_events(message)
    calls = list(ProviderCall.objects.filter(message=message).values_list("pk", "state"))
    later = reached_at + timedelta(days=1)
    for target in TRANSITIONS:
        if current not in TRANSITIONS[target]:
            assert _apply(target, message, later) is False
    message.refresh_from_db()
    assert message.feedback == current
    assert _feedback_events(message) == events
    assert list(ProviderCall.objects.filter(message=message).values_list("pk", "state")) == calls


@pytest.mark.parametrize(
    ("offset", "late"),
    [(timedelta(seconds=-1), False), (timedelta(0), False), (timedelta(microseconds=1), True)],
    ids=["before-deadline", "at-deadline", "after-deadline"],
)
def test_confirm_is_late_only_strictly_after_the_deadline(offset, late):
    message = make_message(sent_at=T0)
    assert services.confirm(message, at=T0 + WINDOW + offset) is True
    assert message.confirmed_late is late
    assert _feedback_events(message) == [(Feedback.PENDING, Feedback.CONFIRMED)]


def test_expiry_takes_messages_exactly_at_their_deadline():
    message = make_message(sent_at=T0)
    assert services.expire_overdue(now=T0 + WINDOW - timedelta(microseconds=1)) == 0
    assert services.expire_overdue(now=T0 + WINDOW) == 1
    message.refresh_from_db()
    assert message.feedback == Feedback.EXPIRED


def test_expiry_in_batches_queues_each_report_once(
    settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "EXPIRE_BATCH": 2}
    queued: list[int] = []
    monkeypatch.setattr(outbox, "enqueue", lambda ids: queued.extend(ids) or len(ids))
    for _ in range(5):
        make_message(sent_at=T0)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue(now=T0 + WINDOW) == 5
    calls = ProviderCall.objects.all()
    assert sorted(queued) == sorted(call.pk for call in calls)
    assert [call.payload for call in calls] == [{"outcome": "failed"}] * 5
    assert MessageEvent.objects.filter(to_value=Feedback.EXPIRED).count() == 5


# --- random sequences -------------------------------------------------------------------------

#: Purposes with different windows (tests/settings.py: "*": 600, "locmem:login": 60).
WINDOWS = {"otp": timedelta(seconds=600), "login": timedelta(seconds=60)}


class FeedbackMachine(RuleBasedStateMachine):
    """A few messages, a fake clock, and the services; the model says what must have happened."""

    messages = Bundle("messages")

    def __init__(self) -> None:
        super().__init__()
        # One hypothesis example = one clean slate (all inside the test's transaction).
        Message.objects.all().delete()
        self.clock = T0
        #: pk -> expected state of each message.
        self.model: dict = {}

    # -- steps

    @initialize(
        target=messages,
        purposes=st.lists(st.sampled_from(sorted(WINDOWS)), min_size=1, max_size=3),
    )
    def track_some(self, purposes):
        return multiple(*(self._track(purpose) for purpose in purposes))

    @precondition(lambda self: len(self.model) < 4)
    @rule(target=messages, purpose=st.sampled_from(sorted(WINDOWS)))
    def track(self, purpose):
        return self._track(purpose)

    def _track(self, purpose):
        message = make_message(sent_at=self.clock, purpose=purpose)
        self.model[message.pk] = {
            "feedback": Feedback.PENDING,
            "deadline": self.clock + WINDOWS[purpose],
            "late": False,
            "feedback_changes": 0,
            "delivery": Delivery.QUEUED,
            "delivery_changes": 0,
            "last_outcome": None,
        }
        assert message.feedback_deadline == self.clock + WINDOWS[purpose]
        return message.pk

    @rule(seconds=st.sampled_from([0, 1, 30, 59, 60, 61, 300, 599, 600, 601, 1200]))
    def advance(self, seconds):
        self.clock += timedelta(seconds=seconds)

    @rule(pk=messages)
    def advance_to_deadline(self, pk):
        """Boundaries matter: land exactly on a deadline when it is still ahead."""
        self.clock = max(self.clock, self.model[pk]["deadline"])

    @rule(pk=messages, by=st.sampled_from(["pk", "uuid-string", "provider-id"]))
    def confirm(self, pk, by):
        expected = self.model[pk]
        allowed = expected["feedback"] in TRANSITIONS[Feedback.CONFIRMED]
        changed = services.confirm(**self._ref(pk, by), at=self.clock)
        assert changed is allowed
        if allowed:
            expected["late"] = (
                expected["feedback"] in LATE_FROM or self.clock > expected["deadline"]
            )
            self._moved(expected, Feedback.CONFIRMED, "confirmed")

    @rule(pk=messages)
    def fail(self, pk):
        expected = self.model[pk]
        allowed = expected["feedback"] in TRANSITIONS[Feedback.FAILED]
        assert services.fail(pk, at=self.clock) is allowed
        if allowed:
            self._moved(expected, Feedback.FAILED, "failed")

    @precondition(lambda self: self.model)
    @rule()
    def expire(self):
        due = [
            expected
            for expected in self.model.values()
            if expected["feedback"] in TRANSITIONS[Feedback.EXPIRED]
            and expected["deadline"] <= self.clock
        ]
        assert services.expire_overdue(now=self.clock) == len(due)
        for expected in due:
            self._moved(expected, Feedback.EXPIRED, "failed")

    @rule(pk=messages, status=st.sampled_from(Delivery.values))
    def record_delivery(self, pk, status):
        expected = self.model[pk]
        moves = DELIVERY_RANK[status] > DELIVERY_RANK[expected["delivery"]]
        assert services.record_delivery(pk, status, at=self.clock) is moves
        if moves:
            expected["delivery"] = status
            expected["delivery_changes"] += 1

    # -- helpers

    def _ref(self, pk, by):
        if by == "pk":
            return {"message": pk}
        if by == "uuid-string":
            return {"message": str(pk)}
        provider_id = Message.objects.values_list("provider_message_id", flat=True).get(pk=pk)
        return {"provider": "locmem", "provider_message_id": provider_id}

    @staticmethod
    def _moved(expected, target, outcome):
        expected["feedback"] = target
        expected["feedback_changes"] += 1
        expected["last_outcome"] = outcome

    # -- checked after every step

    @invariant()
    def database_matches_the_model(self):
        rows = {
            row["pk"]: row
            for row in Message.objects.values(
                "pk", "feedback", "confirmed_late", "confirmed_at", "delivery_status"
            )
        }
        assert set(rows) == set(self.model)
        for pk, expected in self.model.items():
            row = rows[pk]
            assert row["feedback"] == expected["feedback"]
            assert row["confirmed_late"] is expected["late"]
            assert (row["confirmed_at"] is not None) is (expected["feedback"] == Feedback.CONFIRMED)
            assert row["delivery_status"] == expected["delivery"]

    @invariant()
    def one_event_per_transition_and_each_continues_the_last(self):
        for pk, expected in self.model.items():
            events = list(
                MessageEvent.objects.filter(message_id=pk, kind=EventKind.FEEDBACK)
                .order_by("pk")
                .values_list("from_value", "to_value")
            )
            assert len(events) == expected["feedback_changes"]
            state = Feedback.PENDING
            for from_value, to_value in events:
                assert from_value == state
                assert from_value in TRANSITIONS[to_value]
                state = to_value
            assert state == expected["feedback"]
            # Confirmed is final: nothing follows it.
            if Feedback.CONFIRMED in (to for _, to in events):
                assert events[-1][1] == Feedback.CONFIRMED

    @invariant()
    def delivery_status_only_moves_up(self):
        for pk, expected in self.model.items():
            events = list(
                MessageEvent.objects.filter(message_id=pk, kind=EventKind.DELIVERY)
                .order_by("pk")
                .values_list("from_value", "to_value")
            )
            # The first event is the tracking itself.
            assert events[0] == ("", Delivery.QUEUED)
            assert len(events) == 1 + expected["delivery_changes"]
            for (_, previous), (from_value, to_value) in itertools.pairwise(events):
                assert from_value == previous
                assert DELIVERY_RANK[to_value] > DELIVERY_RANK[from_value]
            assert events[-1][1] == expected["delivery"]

    @invariant()
    def only_the_latest_outcome_waits_in_the_outbox(self):
        for pk, expected in self.model.items():
            waiting = list(
                ProviderCall.objects.filter(message_id=pk, state=CallState.PENDING).values_list(
                    "payload", flat=True
                )
            )
            if expected["last_outcome"] is None:
                assert waiting == []
            else:
                assert waiting == [{"outcome": expected["last_outcome"]}]


def test_random_sequences_of_service_calls_follow_the_state_machine():
    run_state_machine_as_test(
        FeedbackMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
