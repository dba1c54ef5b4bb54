"""Verifications: messages of one attempt share a row; a confirmation supersedes the others;
reports count conversion per verification and resends."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from feedback_app import reports, rollups, services, signals
from feedback_app.models import Message, MessageEvent, ProviderCall, Verification
from feedback_app.providers import locmem
from feedback_app.providers.aws_sms import AwsSmsProvider
from feedback_app.providers.twilio import TwilioProvider
from feedback_app.recipients import recipient_hash
from feedback_app.reports import ReportFilters, conversion_report
from feedback_app.states import CallState, Delivery, EventKind, Feedback
from feedback_app.verifications import key_hash

from .factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db


def attempt(key: str, count: int, **fields) -> list[Message]:
    """``count`` messages of the verification ``key``: the first and its resends."""
    return [make_message(verification=key, **fields) for _ in range(count)]


def feedback_events(message: Message) -> list[tuple[str, str]]:
    return list(
        MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK)
        .order_by("pk")
        .values_list("from_value", "to_value")
    )


def reload(*messages: Message) -> list[Message]:
    for message in messages:
        message.refresh_from_db()
    return list(messages)


# -- grouping ----------------------------------------------------------------------------------


def test_messages_with_one_key_share_one_verification_and_later_ones_are_resends():
    first, second, third = attempt("login-1", 3)
    verification = Verification.objects.get()
    assert {m.verification_id for m in (first, second, third)} == {verification.pk}
    assert [first.resend, second.resend, third.resend] == [False, True, True]
    assert verification.resends == 2
    assert verification.purpose == "otp"
    assert verification.recipient_hash == recipient_hash(NUMBERS["US"])
    assert verification.country == "US"
    assert verification.created_at == first.sent_at
    assert verification.converted_at is None and verification.converting_message is None


def test_send_takes_the_key_too():
    first = services.send(provider="locmem", to=NUMBERS["GB"], body="1234", verification="k")
    again = services.send(provider="locmem", to=NUMBERS["GB"], body="5678", verification="k")
    assert first.verification_id == again.verification_id
    assert again.resend and not first.resend


def test_messages_without_a_key_have_no_verification():
    message = make_message()
    assert message.verification is None and not message.resend
    assert not Verification.objects.exists()


def test_the_key_is_stored_only_as_its_keyed_hash():
    key = "session-+12015550123-alice@example.com"
    make_message(verification=key)
    verification = Verification.objects.get()
    assert verification.key_hash == key_hash(key)
    assert key_hash(key) != key_hash(key + " ")
    # Apart from the recipient hash: a key equal to a number does not give the number's hash.
    assert key_hash(NUMBERS["US"]) != recipient_hash(NUMBERS["US"])
    row = Verification.objects.filter(pk=verification.pk).values().get()
    assert not any(key in str(value) for value in row.values())


@pytest.mark.parametrize(
    ("key", "code"),
    [("", "invalid"), ("  ", "invalid"), (42, "invalid"), ("a\x00b", "null_characters")]
    + [("x" * 256, "max_length")],
)
def test_a_bad_key_is_refused_and_nothing_is_written(key, code):
    with pytest.raises(ValidationError) as info:
        make_message(verification=key)
    assert info.value.error_dict["verification"][0].code == code
    assert not Message.objects.exists() and not Verification.objects.exists()


@pytest.mark.parametrize(
    "change", [{"to": NUMBERS["GB"]}, {"purpose": "login"}], ids=["recipient", "purpose"]
)
def test_a_key_reused_for_another_recipient_or_purpose_is_refused(change):
    (first,) = attempt("attempt-7", 1)
    with pytest.raises(ValidationError) as info:
        make_message(verification="attempt-7", **change)
    assert info.value.error_dict["verification"][0].code == "verification_mismatch"
    assert list(Message.objects.all()) == [first]
    assert Verification.objects.get().resends == 0


def test_a_send_with_a_mismatched_key_calls_no_provider():
    services.send(provider="locmem", to=NUMBERS["US"], body="1", verification="k")
    sent = len(locmem.outbox)
    with pytest.raises(ValidationError):
        services.send(provider="locmem", to=NUMBERS["DE"], body="2", verification="k")
    assert len(locmem.outbox) == sent
    assert Message.objects.count() == 1


def test_a_resend_after_a_refresh_counts_at_once(clock):
    attempt("k", 1, sent_at=clock.now - timedelta(hours=3))
    clock.advance(minutes=10)
    rollups.refresh()
    clock.advance(minutes=10)
    make_message(verification="k", sent_at=clock.now - timedelta(hours=1))
    totals = conversion_report().totals
    assert totals.verifications == 1 and totals.resends == 1 and totals.verifications_resent == 1


# -- superseded --------------------------------------------------------------------------------


def test_confirming_one_message_supersedes_the_other_open_ones():
    (expired,) = attempt("k", 1, sent_at=timezone.now() - timedelta(hours=1))
    services.expire_overdue()
    failed, confirmed, pending = attempt("k", 3)
    services.fail(failed)
    assert services.confirm(confirmed) is True

    expired, failed, confirmed, pending = reload(expired, failed, confirmed, pending)
    assert [m.feedback for m in (expired, failed, confirmed, pending)] == [
        Feedback.SUPERSEDED,
        Feedback.FAILED,
        Feedback.CONFIRMED,
        Feedback.SUPERSEDED,
    ]
    assert feedback_events(pending) == [(Feedback.PENDING, Feedback.SUPERSEDED)]
    assert feedback_events(expired)[-1] == (Feedback.EXPIRED, Feedback.SUPERSEDED)
    event = MessageEvent.objects.filter(message=pending, to_value=Feedback.SUPERSEDED).get()
    assert event.detail == {"by": str(confirmed.pk)}
    verification = Verification.objects.get()
    assert verification.converting_message_id == confirmed.pk
    assert verification.converted_at == confirmed.confirmed_at
    # Not a conversion, not a delivery failure.
    assert pending.confirmed_at is None and pending.delivery_status == Delivery.QUEUED


def test_a_superseded_message_cannot_be_confirmed_failed_or_expired_later():
    first, resend = attempt("k", 2)
    services.confirm(resend)
    first.refresh_from_db()
    events = feedback_events(first)
    assert services.confirm(first) is False
    assert services.fail(first) is False
    assert services.expire_overdue(now=timezone.now() + timedelta(days=1)) == 0
    first.refresh_from_db()
    assert first.feedback == Feedback.SUPERSEDED
    assert feedback_events(first) == events
    assert Verification.objects.get().converting_message_id == resend.pk


def test_a_late_confirmation_of_a_failed_message_keeps_the_first_conversion():
    first, resend = attempt("k", 2)
    services.fail(first)
    services.confirm(resend)
    assert services.confirm(first) is True  # a failed message may still convert (late)
    verification = Verification.objects.get()
    assert verification.converting_message_id == resend.pk
    assert conversion_report().totals.verifications_converted == 1


def test_signals_for_superseded_messages_go_out_after_commit(django_capture_on_commit_callbacks):
    first, resend = attempt("k", 2)
    seen = []

    def receiver(message, old, new, source, **kwargs):
        seen.append((message.pk, old, new, source))

    signals.feedback_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.confirm(resend)
        assert seen == []
        for callback in callbacks:
            callback()
    finally:
        signals.feedback_changed.disconnect(receiver)
    assert (first.pk, Feedback.PENDING, Feedback.SUPERSEDED, "python") in seen
    assert (resend.pk, Feedback.PENDING, Feedback.CONFIRMED, "python") in seen


def test_messages_without_a_verification_are_never_superseded():
    alone, other = make_message(), make_message()
    services.confirm(alone)
    other.refresh_from_db()
    assert other.feedback == Feedback.PENDING


# -- provider reports for superseded messages --------------------------------------------------


def report_calls(message: Message) -> list[tuple[dict, str]]:
    return list(
        ProviderCall.objects.filter(message=message).order_by("pk").values_list("payload", "state")
    )


def test_an_undelivered_superseded_message_is_reported_failed_once():
    first, resend = attempt("k", 2, delivery_status=Delivery.SENT)
    services.confirm(resend)
    assert report_calls(first) == [({"outcome": "failed"}, CallState.PENDING)]


def test_a_delivered_superseded_message_is_not_reported_and_its_waiting_failed_is_dropped():
    sent = timezone.now() - timedelta(hours=1)
    first, resend = attempt("k", 2, sent_at=sent, delivery_status=Delivery.DELIVERED)
    services.expire_overdue(now=sent + timedelta(minutes=11))  # writes FAILED for both
    assert report_calls(first) == [({"outcome": "failed"}, CallState.PENDING)]
    services.confirm(resend)
    assert report_calls(first) == [({"outcome": "failed"}, CallState.SUPERSEDED)]


def test_an_expired_undelivered_message_keeps_its_one_failed_report():
    sent = timezone.now() - timedelta(hours=1)
    first, resend = attempt("k", 2, sent_at=sent, delivery_status=Delivery.UNDELIVERED)
    services.expire_overdue(now=sent + timedelta(minutes=11))
    services.confirm(resend)
    assert report_calls(first) == [({"outcome": "failed"}, CallState.PENDING)]


def test_a_message_without_feedback_requested_gets_no_report():
    first, resend = attempt("k", 2, feedback_requested=False)
    services.confirm(resend)
    assert report_calls(first) == []


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (Delivery.DELIVERED, None),
        (Delivery.SENT, "failed"),
        (Delivery.UNKNOWN, "failed"),
        (Delivery.UNDELIVERED, "failed"),
        (Delivery.QUEUED, "failed"),
    ],
)
def test_aws_reports_failed_for_a_superseded_message_only_when_not_delivered(status, outcome):
    provider = AwsSmsProvider("aws_sms", {})
    assert provider.superseded_outcome(Message(delivery_status=status)) == outcome


@pytest.mark.parametrize("status", [Delivery.DELIVERED, Delivery.SENT, Delivery.UNDELIVERED])
def test_twilio_reports_nothing_for_a_superseded_message(status):
    provider = TwilioProvider("twilio", {})
    assert provider.superseded_outcome(Message(delivery_status=status)) is None


# -- reports -----------------------------------------------------------------------------------


def make_history(now):
    """Three verifications (one converted through a resend) and a message without one."""
    sent = now - timedelta(hours=5)
    a1, a2, a3 = attempt("a", 3, sent_at=sent, to=NUMBERS["GB"])
    services.confirm(a3, at=sent + timedelta(minutes=2))
    attempt("b", 1, sent_at=sent + timedelta(hours=1))
    (c1,) = attempt("c", 1, sent_at=sent + timedelta(hours=2), purpose="login")
    services.confirm(c1, at=sent + timedelta(hours=2, seconds=30))
    make_message(sent_at=sent)


def test_reports_count_verifications_their_conversion_and_resends():
    make_history(timezone.now())
    totals = conversion_report().totals
    assert totals.attempted == 6
    assert totals.confirmed == 2 and totals.superseded == 2
    assert totals.conversion_rate == pytest.approx(2 / 6)
    assert totals.verifications == 3
    assert totals.verifications_converted == 2
    assert totals.verification_conversion_rate == pytest.approx(2 / 3)
    assert totals.resends == 2 and totals.verifications_resent == 1
    assert totals.mean_resends == pytest.approx(2 / 3)
    assert totals.resent_share == pytest.approx(1 / 3)
    by_country = {row.key: row.totals for row in conversion_report(by="country").rows}
    assert by_country["GB"].verifications == 1 and by_country["GB"].superseded == 2
    assert by_country["US"].verifications == 2 and by_country["US"].resends == 0


def test_without_verifications_the_rates_are_none():
    make_message()
    totals = conversion_report().totals
    assert totals.verifications == 0
    assert totals.verification_conversion_rate is None
    assert totals.mean_resends is None and totals.resent_share is None


def test_the_superseded_filter_selects_superseded_messages():
    make_history(timezone.now())
    assert conversion_report(ReportFilters(feedback=Feedback.SUPERSEDED)).totals.attempted == 2


VERIFICATION_FIELDS = (
    "superseded",
    "verifications",
    "verifications_converted",
    "verification_conversion_rate",
    "resends",
    "verifications_resent",
    "mean_resends",
    "resent_share",
)


@pytest.mark.parametrize("by", [None, "day", "country", "purpose", reports.HOUR])
def test_rollups_count_verifications_like_the_messages(clock, by):
    make_history(clock.now)
    clock.advance(minutes=10)
    rollups.refresh()
    # A conversion after the refresh is counted at once, at the verification's first message.
    (b,) = Message.objects.filter(verification__key_hash=key_hash("b"))
    make_message(verification="b", sent_at=clock.now)
    services.confirm(b, at=clock.now)

    def numbers(report):
        def pick(totals):
            return {name: getattr(totals, name) for name in VERIFICATION_FIELDS}

        return pick(report.totals), [(row.key, pick(row.totals)) for row in report.rows]

    raw = conversion_report(by=by, source="raw")
    rolled = conversion_report(by=by, source="rollups")
    assert numbers(rolled) == numbers(raw)
    assert raw.totals.verifications_converted == 3 and raw.totals.resends == 3


# -- concurrency (PostgreSQL) ------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_first_sends_of_one_key_make_one_verification(settings):
    # Six sends to one number: more than the guard lets through, and not what this is about.
    guard = {"RECIPIENT_LIMIT": None, "VERIFICATION_LIMIT": None}
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "GUARD": guard}
    threads = 6
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    created: list[Message] = []

    def worker() -> None:
        try:
            barrier.wait(timeout=30)
            created.append(
                services.send(provider="locmem", to=NUMBERS["US"], body="1", verification="race")
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not errors, errors
    verification = Verification.objects.get()
    messages = Message.objects.filter(verification=verification)
    assert messages.count() == threads
    assert messages.filter(resend=False).count() == 1
    assert verification.resends == threads - 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_confirmations_of_one_verification_convert_it_once():
    messages = attempt("k", 4)
    barrier = threading.Barrier(len(messages))
    results: dict[int, bool] = {}
    errors: list[BaseException] = []

    def worker(index: int, message: Message) -> None:
        try:
            barrier.wait(timeout=30)
            results[index] = services.confirm(message.pk)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    workers = [threading.Thread(target=worker, args=item) for item in enumerate(messages)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=60)
    assert not errors, errors
    assert sorted(results.values()) == [False, False, False, True]
    states = sorted(Message.objects.values_list("feedback", flat=True))
    assert states == [Feedback.CONFIRMED] + [Feedback.SUPERSEDED] * 3
    winner = next(m for i, m in enumerate(messages) if results[i])
    assert Verification.objects.get().converting_message_id == winner.pk


# -- retention and the command -----------------------------------------------------------------


def test_a_purge_deletes_a_verification_with_the_last_of_its_messages(clock):
    from feedback_app import retention

    old = clock.now - timedelta(days=40)
    first, resend = attempt("old", 2, sent_at=old)
    services.confirm(resend, at=old + timedelta(minutes=1))
    (kept,) = attempt("spans", 1, sent_at=old)
    make_message(verification="spans", sent_at=clock.now - timedelta(days=1))
    ProviderCall.objects.update(state=CallState.SUCCEEDED)  # a purge waits for open calls
    retention.purge(clock.now - timedelta(days=30))
    assert list(Verification.objects.values_list("key_hash", flat=True)) == [key_hash("spans")]
    assert Message.objects.filter(verification__key_hash=key_hash("spans")).count() == 1


def test_feedback_report_prints_the_verification_numbers():
    import io
    import json

    from django.core.management import call_command

    make_history(timezone.now())
    out = io.StringIO()
    call_command("feedback_report", "--format", "json", stdout=out)
    totals = json.loads(out.getvalue())["totals"]
    assert (totals["verifications"], totals["verifications_converted"]) == (3, 2)
    assert totals["superseded"] == 2 and totals["resends"] == 2
    out = io.StringIO()
    call_command("feedback_report", stdout=out)
    table = out.getvalue()
    assert "verif conversion" in table and "66.7%" in table and "0.67" in table
