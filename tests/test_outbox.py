"""The outbox: a confirmation's provider call is written with it, delivered after commit, retried,
given up on, fenced against stale workers, and never lost when the queue drops its task."""

from __future__ import annotations

import random
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from feedback_app import outbox, queue, services, tasks
from feedback_app.conf import app_settings
from feedback_app.models import Message, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, locmem
from feedback_app.states import CallState, Feedback, Operation

from .factories import make_message

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_brokers():
    """Each test builds its own broker (some break django-q2's get_broker on purpose)."""
    queue.forget_brokers()
    yield
    queue.forget_brokers()


@pytest.fixture
def retry_settings(settings):
    """Override some RETRY knobs for one test (the rest keep their defaults)."""

    def apply(**retry: float) -> None:
        settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "RETRY": retry}

    return apply


def only_call(message: Message) -> ProviderCall:
    return ProviderCall.objects.get(message=message)


def confirm_and_commit(message: Message, capture) -> ProviderCall:
    """Confirm, then run the on-commit hooks (the enqueue; django-q2 runs the task inline)."""
    with capture(execute=True):
        assert services.confirm(message) is True
    return ProviderCall.objects.filter(message=message).latest("pk")


def reported(message: Message) -> list[str]:
    """Outcomes the locmem provider received for ``message``, in order."""
    pmid = message.provider_message_id
    return [r["outcome"] for r in locmem.reports if r["provider_message_id"] == pmid]


# Writing the call ----------------------------------------------------------------------------


def test_confirm_writes_one_pending_report_call_in_its_transaction():
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    assert call.operation == Operation.REPORT_FEEDBACK
    assert call.provider == "locmem"
    assert call.payload == {"outcome": "confirmed"}
    assert call.state == CallState.PENDING
    assert call.attempts == 0
    assert call.next_attempt_at <= timezone.now()
    assert not locmem.reports  # nothing is delivered before commit


def test_call_is_rolled_back_with_the_confirmation():
    message = make_message()
    with pytest.raises(RuntimeError), transaction.atomic():
        services.confirm(message)
        assert ProviderCall.objects.filter(message=message).count() == 1
        raise RuntimeError("the caller's transaction fails after confirm()")
    assert not ProviderCall.objects.exists()
    assert Message.objects.get(pk=message.pk).feedback == Feedback.PENDING


def test_call_is_delivered_after_commit_exactly_once(django_capture_on_commit_callbacks):
    message = make_message()
    call = confirm_and_commit(message, django_capture_on_commit_callbacks)
    assert call.state == CallState.SUCCEEDED
    assert call.attempts == 1
    assert call.completed_at is not None
    assert call.locked_until is None
    assert locmem.reports == [
        {
            "provider_message_id": message.provider_message_id,
            "outcome": "confirmed",
            "idempotency_key": str(call.idempotency_key),
        }
    ]


def test_confirming_again_writes_no_second_call(django_capture_on_commit_callbacks):
    message = make_message()
    confirm_and_commit(message, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.confirm(message) is False
    assert ProviderCall.objects.filter(message=message).count() == 1
    assert len(locmem.reports) == 1


def test_no_call_when_feedback_was_not_requested_or_the_provider_takes_no_reports():
    opted_out = make_message(feedback_requested=False)
    silent = make_message(provider="silent")
    services.confirm(opted_out)
    services.confirm(silent)
    assert not ProviderCall.objects.exists()


# Retries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attempts", "ceiling"),
    [(0, 5), (1, 5), (2, 10), (3, 20), (7, 320), (8, 600), (40, 600)],
)
def test_backoff_is_full_jitter_below_an_exponential_ceiling_capped_at_max_delay(
    monkeypatch, attempts, ceiling
):
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    assert outbox.backoff(attempts) == timedelta(seconds=ceiling)
    monkeypatch.setattr(random, "uniform", lambda low, high: low)
    assert outbox.backoff(attempts) == timedelta(0)


def test_backoff_spreads_retries_over_the_whole_window():
    random.seed(20240601)
    waits = [outbox.backoff(4).total_seconds() for _ in range(300)]
    assert all(0 <= wait <= 40 for wait in waits)
    assert min(waits) < 5 and max(waits) > 35
    assert len(set(waits)) > 250


def test_retryable_error_puts_the_call_back_to_pending_with_backoff(
    clock, django_capture_on_commit_callbacks
):
    locmem.fail_next(1, RetryableError("Too many requests", code=429))
    message = make_message()
    call = confirm_and_commit(message, django_capture_on_commit_callbacks)
    assert call.state == CallState.PENDING
    assert call.attempts == 1
    assert call.last_error == "Too many requests"
    assert call.last_error_code == "429"
    assert call.locked_until is None
    assert call.completed_at is None
    # First retry: full jitter in (now, now + BASE_DELAY].
    assert clock.now <= call.next_attempt_at <= clock.now + timedelta(seconds=5)
    assert not locmem.reports


def test_retry_waits_grow_but_never_exceed_max_delay(clock, monkeypatch, retry_settings):
    retry_settings(BASE_DELAY=10, MAX_DELAY=60)
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    locmem.fail_next(6)
    waits = []
    for _ in range(6):
        assert outbox.deliver(call.pk) == CallState.PENDING
        call.refresh_from_db()
        waits.append((call.next_attempt_at - clock.now).total_seconds())
        assert outbox.deliver(call.pk) is None  # not due yet
        clock.now = call.next_attempt_at
    assert waits == [10, 20, 40, 60, 60, 60]
    assert call.attempts == 6


def test_permanent_error_fails_the_call_with_the_providers_code_and_is_never_retried(
    clock, django_capture_on_commit_callbacks
):
    locmem.fail_next(1, PermanentError("The 'To' number is not a valid phone number", code=21211))
    message = make_message()
    call = confirm_and_commit(message, django_capture_on_commit_callbacks)
    assert call.state == CallState.FAILED
    assert call.last_error_code == "21211"
    assert call.last_error == "The 'To' number is not a valid phone number"
    assert call.attempts == 1
    assert call.completed_at is not None

    clock.advance(days=3)
    assert outbox.due_calls() == []
    assert tasks.sweep_outbox() == 0
    assert outbox.deliver(call.pk) is None
    call.refresh_from_db()
    assert call.state == CallState.FAILED
    assert call.attempts == 1
    assert not locmem.reports


def test_retryable_error_after_max_age_gives_up(clock, retry_settings):
    retry_settings(MAX_AGE=60)
    message = make_message()
    services.confirm(message)
    call = only_call(message)

    locmem.fail_next(1)
    clock.advance(seconds=30)
    assert outbox.deliver(call.pk) == CallState.PENDING

    clock.advance(seconds=31)
    locmem.fail_next(1, RetryableError("Gateway timeout", code=504))
    assert outbox.deliver(call.pk) == CallState.GAVE_UP
    call.refresh_from_db()
    assert call.state == CallState.GAVE_UP
    assert call.attempts == 2
    assert call.last_error == "Gateway timeout"
    assert call.last_error_code == "504"
    assert call.completed_at == clock.now

    clock.advance(days=1)
    assert tasks.sweep_outbox() == 0
    assert not locmem.reports


def test_retryable_error_on_the_last_attempt_gives_up(clock, retry_settings):
    retry_settings(MAX_ATTEMPTS=3)
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    locmem.fail_next(10)
    states = []
    for _ in range(3):
        states.append(outbox.deliver(call.pk))
        clock.advance(hours=1)
    assert states == [CallState.PENDING, CallState.PENDING, CallState.GAVE_UP]

    assert outbox.deliver(call.pk) is None
    assert tasks.sweep_outbox() == 0
    call.refresh_from_db()
    assert call.state == CallState.GAVE_UP
    assert call.attempts == 3
    assert call.last_error_code == "503"
    assert not locmem.reports


def test_a_provider_that_fails_five_times_and_then_recovers_gets_the_report_exactly_once(
    clock, django_capture_on_commit_callbacks
):
    locmem.fail_next(5)
    message = make_message()
    call = confirm_and_commit(message, django_capture_on_commit_callbacks)
    assert call.attempts == 1
    # The periodic sweep runs every minute; the provider is back after its fifth error.
    for _ in range(60 * 24):
        clock.advance(minutes=1)
        tasks.sweep_outbox()
        call.refresh_from_db()
        if call.state != CallState.PENDING:
            break
    assert call.state == CallState.SUCCEEDED
    assert call.attempts == 6
    assert call.last_error == ""
    assert reported(message) == ["confirmed"]

    for _ in range(5):
        clock.advance(minutes=10)
        assert tasks.sweep_outbox() == 0
    assert len(locmem.reports) == 1


@pytest.mark.parametrize("seed", [1, 5, 9])
def test_with_the_default_policy_a_report_outlasts_hours_of_provider_outage(
    clock, django_capture_on_commit_callbacks, seed
):
    """MAX_AGE (a day) decides, not the attempt count: 25 attempts used to give up after
    less than two hours of full-jitter backoff capped at ten minutes."""
    random.seed(seed)
    locmem.fail_next(100_000)
    message = make_message()
    call = confirm_and_commit(message, django_capture_on_commit_callbacks)
    for _ in range(6 * 60):  # six hours down, the sweep every minute
        clock.advance(minutes=1)
        tasks.sweep_outbox()
    call.refresh_from_db()
    assert call.state == CallState.PENDING and call.attempts > 25
    locmem.reset()  # back
    for _ in range(60):
        clock.advance(minutes=1)
        tasks.sweep_outbox()
    call.refresh_from_db()
    assert call.state == CallState.SUCCEEDED
    assert reported(message) == ["confirmed"]


# Claims and fencing --------------------------------------------------------------------------


def test_only_one_of_two_claims_of_a_due_call_wins():
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    now = timezone.now()
    first = outbox.claim(call.pk, now)
    second = outbox.claim(call.pk, now)
    assert first is not None
    assert second is None
    call.refresh_from_db()
    assert call.state == CallState.IN_FLIGHT
    assert call.attempts == 1
    assert call.locked_until == now + timedelta(seconds=app_settings.CLAIM_TIMEOUT)


def test_a_call_is_not_claimed_before_it_is_due():
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    assert outbox.claim(call.pk, call.next_attempt_at - timedelta(seconds=1)) is None
    assert only_call(message).state == CallState.PENDING


def test_a_stale_claim_is_taken_over_and_the_old_workers_late_finish_is_ignored():
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    start = timezone.now()
    timeout = timedelta(seconds=app_settings.CLAIM_TIMEOUT)

    old = outbox.claim(call.pk, start)
    assert outbox.claim(call.pk, start + timeout - timedelta(seconds=1)) is None
    new = outbox.claim(call.pk, start + timeout + timedelta(seconds=1))
    assert new is not None
    assert (old.attempts, new.attempts) == (1, 2)

    # The first worker wakes up and tries to record its outcome: its claim is gone.
    assert outbox._finish(old, state=CallState.FAILED, last_error="late") is False
    call.refresh_from_db()
    assert (call.state, call.attempts, call.last_error) == (CallState.IN_FLIGHT, 2, "")

    assert outbox._finish(new, state=CallState.SUCCEEDED, completed_at=timezone.now()) is True
    call.refresh_from_db()
    assert call.state == CallState.SUCCEEDED
    assert outbox._finish(old, state=CallState.FAILED) is False


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_of_one_call_have_exactly_one_winner(monkeypatch):
    monkeypatch.setattr(outbox, "enqueue", lambda call_ids: 0)  # leave the call to the threads
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    workers = 8
    barrier = threading.Barrier(workers)
    winners: list[int] = []
    errors: list[BaseException] = []

    def claim() -> None:
        try:
            barrier.wait()
            if outbox.claim(call.pk) is not None:
                winners.append(threading.get_ident())
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=claim) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(winners) == 1
    call.refresh_from_db()
    assert (call.state, call.attempts) == (CallState.IN_FLIGHT, 1)


# Superseded reports ----------------------------------------------------------------------------


def test_an_older_pending_report_is_superseded_by_a_newer_one():
    message = make_message()
    services.fail(message)
    older = only_call(message)
    assert older.payload == {"outcome": "failed"}
    services.confirm(message)
    newer = ProviderCall.objects.filter(message=message).latest("pk")
    older.refresh_from_db()
    assert older.state == CallState.SUPERSEDED
    assert newer.payload == {"outcome": "confirmed"}

    assert outbox.deliver(older.pk) is None
    assert outbox.deliver(newer.pk) == CallState.SUCCEEDED
    assert reported(message) == ["confirmed"]


def test_an_in_flight_older_report_is_not_delivered_once_a_newer_one_exists(clock):
    message = make_message()
    services.fail(message)
    older = only_call(message)
    assert outbox.claim(older.pk) is not None  # its worker then dies
    services.confirm(message)

    clock.advance(seconds=app_settings.CLAIM_TIMEOUT + 1)
    tasks.sweep_outbox()
    states = dict(ProviderCall.objects.filter(message=message).values_list("pk", "state"))
    assert states[older.pk] == CallState.SUPERSEDED
    assert sorted(states.values()) == [CallState.SUCCEEDED, CallState.SUPERSEDED]
    assert reported(message) == ["confirmed"]


# One call at a time per message -----------------------------------------------------------------


def test_a_newer_report_waits_while_an_older_one_is_being_delivered(clock, monkeypatch):
    """fail() -> worker A delivers ``failed`` -> confirm() -> worker B takes ``confirmed``:
    B must not reach the provider before A is done, or AWS keeps the older outcome."""
    message = make_message()
    services.fail(message)
    older = only_call(message)
    real_report = locmem.LocmemProvider.report_feedback
    during: dict[str, object] = {}

    def report_while_b_tries(self, **kwargs):
        if kwargs["outcome"] == "failed":
            # A is talking to the provider: the user converts, and worker B picks the new call.
            assert services.confirm(message) is True
            newer = ProviderCall.objects.filter(message=message).latest("pk")
            during["newer"] = newer
            during["b"] = outbox.deliver(newer.pk)
            newer.refresh_from_db()
            during["newer_after_b"] = newer
        real_report(self, **kwargs)

    monkeypatch.setattr(locmem.LocmemProvider, "report_feedback", report_while_b_tries)
    assert outbox.deliver(older.pk) == CallState.SUCCEEDED  # worker A
    newer = during["newer_after_b"]
    assert during["b"] is None  # B did not take it
    assert (newer.state, newer.attempts) == (CallState.PENDING, 0)
    assert newer.next_attempt_at == clock.now + timedelta(seconds=outbox.WAIT_FOR_OLDER)
    assert reported(message) == ["failed"]

    # The sweep hands it over once it is due again; the provider ends with the latest outcome.
    clock.advance(seconds=outbox.WAIT_FOR_OLDER + app_settings.SWEEP_GRACE + 1)
    assert tasks.sweep_outbox() == 1
    assert reported(message) == ["failed", "confirmed"]
    assert only_call_states(message) == [CallState.SUCCEEDED, CallState.SUCCEEDED]


def test_an_older_call_whose_claim_ran_out_does_not_block_the_newer_one(clock):
    message = make_message()
    services.fail(message)
    older = only_call(message)
    assert outbox.claim(older.pk) is not None  # its worker then hangs
    services.confirm(message)
    newer = ProviderCall.objects.filter(message=message).latest("pk")
    assert outbox.claim(newer.pk) is None  # blocked while the older claim is live

    clock.advance(seconds=app_settings.CLAIM_TIMEOUT + 1)
    assert outbox.claim(newer.pk) is not None


def test_calls_of_other_messages_are_not_held_back():
    first, second = make_message(), make_message()
    services.fail(first)
    services.confirm(second)
    assert outbox.claim(only_call(first).pk) is not None
    assert outbox.deliver(only_call(second).pk) == CallState.SUCCEEDED


def test_an_older_call_is_not_held_back_by_a_newer_one_in_flight():
    message = make_message()
    services.fail(message)
    older = only_call(message)
    # Written in an order the services never produce (two open calls), to pin the rule down:
    # only an older call in flight blocks.
    newer = ProviderCall.objects.create(
        message=message,
        provider="locmem",
        operation=Operation.REPORT_FEEDBACK,
        payload={"outcome": "confirmed"},
        next_attempt_at=older.next_attempt_at,
        created_at=older.created_at,
    )
    assert outbox.claim(newer.pk) is not None
    assert outbox.claim(older.pk) is not None


def only_call_states(message: Message) -> list[str]:
    return list(
        ProviderCall.objects.filter(message=message).order_by("pk").values_list("state", flat=True)
    )


# Re-queueing -----------------------------------------------------------------------------------


def test_retry_calls_requeues_failed_and_given_up_calls(
    django_capture_on_commit_callbacks, retry_settings
):
    retry_settings(MAX_ATTEMPTS=1)
    refused, throttled, fine = make_message(), make_message(), make_message()
    locmem.fail_next(1, PermanentError("Authenticate", code=20003))
    assert confirm_and_commit(refused, django_capture_on_commit_callbacks).state == "failed"
    locmem.fail_next(1)
    assert confirm_and_commit(throttled, django_capture_on_commit_callbacks).state == "gave_up"
    assert confirm_and_commit(fine, django_capture_on_commit_callbacks).state == "succeeded"

    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.retry_calls(queryset=ProviderCall.objects.all()) == 2
    calls = {c.message_id: c for c in ProviderCall.objects.all()}
    assert {c.state for c in calls.values()} == {CallState.SUCCEEDED}
    assert calls[refused.pk].attempts == 1
    assert calls[refused.pk].completed_at is not None
    assert sorted(r["provider_message_id"] for r in locmem.reports) == sorted(
        m.provider_message_id for m in (refused, throttled, fine)
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.retry_calls(ProviderCall.objects.all()) == 0
    assert len(locmem.reports) == 3


def test_retry_calls_restarts_the_max_age_clock(clock, retry_settings):
    retry_settings(MAX_AGE=60)
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    clock.advance(seconds=120)
    locmem.fail_next(1)
    assert outbox.deliver(call.pk) == CallState.GAVE_UP

    assert outbox.retry_calls([call]) == 1
    locmem.fail_next(1)
    assert outbox.deliver(call.pk) == CallState.PENDING  # not too old any more
    clock.advance(seconds=10)
    assert outbox.deliver(call.pk) == CallState.SUCCEEDED
    assert reported(message) == ["confirmed"]


@pytest.mark.parametrize("returning", [True, False], ids=["update-returning", "row-by-row"])
def test_retry_calls_leaves_a_call_that_changed_since_it_was_read(
    returning, monkeypatch, retry_settings, django_capture_on_commit_callbacks
):
    retry_settings(MAX_ATTEMPTS=1)
    messages = [make_message() for _ in range(3)]
    calls = []
    for message in messages:
        services.confirm(message)
        locmem.fail_next(1, PermanentError("Authenticate", code=20003))
        assert outbox.deliver(only_call(message).pk) == CallState.FAILED
        calls.append(only_call(message))
    taken = calls[0]
    real_reset = outbox._reset_calls

    def another_retry_got_there_first(ids, now):
        # Between reading the ids and the UPDATE: retried elsewhere and now being delivered.
        ProviderCall.objects.filter(pk=taken.pk).update(state=CallState.IN_FLIGHT, attempts=7)
        return real_reset(ids, now)

    queued: list[int] = []
    monkeypatch.setattr(outbox, "_can_return_from_update", lambda: returning)
    monkeypatch.setattr(outbox, "_reset_calls", another_retry_got_there_first)
    monkeypatch.setattr(outbox, "enqueue", lambda ids: queued.extend(ids) or len(ids))
    with django_capture_on_commit_callbacks(execute=True):
        assert outbox.retry_calls(calls) == 2
    assert sorted(queued) == sorted(c.pk for c in calls[1:])
    taken.refresh_from_db()
    assert (taken.state, taken.attempts) == (CallState.IN_FLIGHT, 7)
    for call in calls[1:]:
        call.refresh_from_db()
        assert (call.state, call.attempts, call.completed_at) == (CallState.PENDING, 0, None)


# No loss -----------------------------------------------------------------------------------------


def _broken(*args, **kwargs):
    raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")


@pytest.mark.parametrize(
    ("queue_name", "broken"),
    [
        pytest.param("django_q", "django_q.tasks.async_task", marks=pytest.mark.django_q),
        pytest.param("django_q", "django_q.brokers.get_broker", marks=pytest.mark.django_q),
        (
            "django_tasks",
            f"{queue.tasks_api().__name__}.backends.immediate.ImmediateBackend.enqueue",
        ),
    ],
)
def test_when_the_broker_is_down_the_sweep_delivers_the_call_exactly_once(
    queue_name, broken, clock, monkeypatch, settings, django_capture_on_commit_callbacks
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "QUEUE": queue_name}
    message = make_message()
    with monkeypatch.context() as patch:
        patch.setattr(broken, _broken)
        with django_capture_on_commit_callbacks(execute=True) as hooks:
            assert services.confirm(message) is True  # the enqueue failure does not raise
        assert hooks  # the enqueue did run, and failed
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED
    call = only_call(message)
    assert (call.state, call.attempts) == (CallState.PENDING, 0)
    assert not locmem.reports

    # Within the grace the sweep leaves the call to the task enqueued on commit.
    clock.advance(seconds=app_settings.SWEEP_GRACE - 1)
    assert tasks.sweep_outbox() == 0
    assert not locmem.reports

    clock.advance(seconds=2)
    assert tasks.sweep_outbox() == 1
    assert reported(message) == ["confirmed"]
    call.refresh_from_db()
    assert (call.state, call.attempts) == (CallState.SUCCEEDED, 1)

    clock.advance(minutes=5)
    assert tasks.sweep_outbox() == 0
    assert len(locmem.reports) == 1


def test_when_the_worker_dies_holding_a_call_the_sweep_delivers_it_exactly_once(clock):
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    assert outbox.claim(call.pk) is not None  # the worker is killed before calling the provider

    clock.advance(seconds=app_settings.CLAIM_TIMEOUT - 1)
    assert tasks.sweep_outbox() == 0
    clock.advance(seconds=2)
    assert tasks.sweep_outbox() == 1
    assert tasks.sweep_outbox() == 0
    call.refresh_from_db()
    assert (call.state, call.attempts) == (CallState.SUCCEEDED, 2)
    assert reported(message) == ["confirmed"]


@pytest.mark.django_q
def test_enqueue_failure_is_logged_and_counts_nothing(monkeypatch, caplog):
    monkeypatch.setattr("django_q.brokers.get_broker", _broken)
    assert outbox.enqueue([1, 2, 3]) == 0
    assert "could not enqueue" in caplog.text


class CountingBroker:
    """Stands in for a django-q2 broker; async_task is patched to use it."""

    built = 0

    def __init__(self, list_key=None):
        type(self).built += 1
        self.list_key = list_key
        self.pushed: list[int] = []
        self.down = False


@pytest.fixture
def counting_broker(monkeypatch):
    CountingBroker.built = 0
    monkeypatch.setattr("django_q.brokers.get_broker", CountingBroker)

    def async_task(func, call_id, broker):
        if broker.down:
            raise ConnectionError("Connection refused")
        broker.pushed.append(call_id)

    monkeypatch.setattr("django_q.tasks.async_task", async_task)
    return CountingBroker


@pytest.mark.django_q
def test_enqueues_reuse_one_broker_per_queue(counting_broker, settings):
    assert outbox.enqueue([1, 2]) == 2
    assert outbox.enqueue([3]) == 1
    assert counting_broker.built == 1
    broker = queue.get_broker()
    assert broker.pushed == [1, 2, 3]

    # Another cluster name gets a broker of its own.
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback"}
    assert outbox.enqueue([4]) == 1
    assert counting_broker.built == 2
    assert queue.get_broker().list_key == "feedback"


@pytest.mark.django_q
def test_an_enqueue_error_drops_the_broker_so_the_next_one_reconnects(counting_broker, caplog):
    assert outbox.enqueue([1]) == 1
    broken = queue.get_broker()
    broken.down = True
    assert outbox.enqueue([2]) == 0
    assert "could not enqueue" in caplog.text
    assert outbox.enqueue([3]) == 1
    assert counting_broker.built == 2
    assert queue.get_broker() is not broken
    assert queue.get_broker().pushed == [3]


# Misconfiguration ------------------------------------------------------------------------------


def test_a_call_for_a_provider_no_longer_configured_fails_with_not_configured():
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    ProviderCall.objects.filter(pk=call.pk).update(provider="retired")
    assert outbox.deliver(call.pk) == CallState.FAILED
    call.refresh_from_db()
    assert call.state == CallState.FAILED
    assert call.last_error_code == "not_configured"
    assert "retired" in call.last_error
    assert not locmem.reports


# Unexpected failures -----------------------------------------------------------------------------


def test_an_unexpected_error_from_a_backend_is_retried_and_then_given_up(
    clock, monkeypatch, retry_settings
):
    retry_settings(MAX_ATTEMPTS=2)
    message = make_message()
    services.confirm(message)
    call = only_call(message)

    def explode(self, **kwargs):
        raise ValueError("SDK bug")

    monkeypatch.setattr(locmem.LocmemProvider, "report_feedback", explode)
    assert outbox.deliver(call.pk) == CallState.PENDING
    call.refresh_from_db()
    assert (call.attempts, call.last_error_code) == (1, "unexpected")
    assert "SDK bug" in call.last_error
    clock.advance(seconds=app_settings.RETRY["MAX_DELAY"] + 1)
    assert outbox.deliver(call.pk) == CallState.GAVE_UP
    assert only_call(message).state == CallState.GAVE_UP


def test_a_call_whose_workers_keep_dying_is_given_up_instead_of_claimed_forever(retry_settings):
    retry_settings(MAX_ATTEMPTS=2)
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    start = timezone.now()
    timeout = timedelta(seconds=app_settings.CLAIM_TIMEOUT + 1)
    # Two workers claim it and die without finishing.
    assert outbox.claim(call.pk, start) is not None
    assert outbox.claim(call.pk, start + timeout) is not None
    ProviderCall.objects.filter(pk=call.pk).update(locked_until=start)
    assert outbox.deliver(call.pk) == CallState.GAVE_UP
    call.refresh_from_db()
    assert (call.state, call.last_error_code) == (CallState.GAVE_UP, "worker_lost")
    assert not locmem.reports


def test_a_worker_whose_claim_was_taken_over_does_not_report_success(monkeypatch):
    message = make_message()
    services.confirm(message)
    call = only_call(message)
    real_report = locmem.LocmemProvider.report_feedback

    def slow_report(self, **kwargs):
        # While this worker talks to the provider, its claim runs out and another takes it.
        ProviderCall.objects.filter(pk=call.pk).update(attempts=99)
        real_report(self, **kwargs)

    monkeypatch.setattr(locmem.LocmemProvider, "report_feedback", slow_report)
    assert outbox.deliver(call.pk) is None
    assert only_call(message).state == CallState.IN_FLIGHT
