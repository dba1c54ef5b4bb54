"""``manage.py feedback_purge``: retention in batches, interruptible, and re-runnable."""

from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.db import connection
from django.db.models.signals import post_delete
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app import retention, services
from feedback_app.models import BlockedSend, Message, MessageEvent, ProviderCall, Verification
from feedback_app.states import CallState
from tests.factories import make_message

from .conftest import run, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def history():
    """Five confirmed messages 100 days old (events and a succeeded call each), two recent."""
    now = timezone.now()
    old = []
    for _ in range(5):
        message = make_message(sent_at=now - timedelta(days=100))
        services.confirm(message)
        old.append(message.pk)
    # Delivered long ago: a report still open would keep its message.
    ProviderCall.objects.update(state=CallState.SUCCEEDED, completed_at=now - timedelta(days=99))
    recent = [make_message(sent_at=now - timedelta(days=10)).pk for _ in range(2)]
    return old, recent


def test_dry_run_counts_and_deletes_nothing(history):
    before = snapshot()
    output = run("feedback_purge", "--dry-run")
    assert "5 messages sent before" in output
    assert "with 10 events and 5 provider calls, and 0 refused sends (dry run)" in output
    assert snapshot() == before


def test_deletes_old_messages_with_their_events_and_calls_in_batches(history):
    old, recent = history
    output = run("feedback_purge", "--batch-size", "2")
    assert "Deleted 5 messages" in output and "10 events and 5 provider calls" in output
    # Plain progress lines (not a terminal): one per batch here, each a tenth or more.
    assert "  2 / 5 messages" in output and "  5 / 5 messages" in output
    assert set(Message.objects.values_list("pk", flat=True)) == set(recent)
    assert not MessageEvent.objects.filter(message_id__in=old).exists()
    assert not ProviderCall.objects.filter(message_id__in=old).exists()
    assert "Deleted 0 messages" in run("feedback_purge")


def test_days_overrides_the_setting_and_none_keeps_everything(history):
    with override_settings(FEEDBACK_APP={"HASH_KEY": "x" * 32, "RETENTION_DAYS": None}):
        with pytest.raises(CommandError, match="pass --days"):
            run("feedback_purge")
        assert "Deleted 7 messages" in run("feedback_purge", "--days", "5")


def test_an_interrupted_purge_keeps_its_finished_batches_and_a_rerun_completes(history):
    batches = []

    def interrupt(done: int) -> None:
        batches.append(done)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        retention.purge(retention.cutoff(), batch_size=2, progress=interrupt)
    assert batches == [2]
    assert Message.objects.count() == 5  # the first batch is committed, nothing else touched
    assert "Deleted 3 messages" in run("feedback_purge", "--batch-size", "2")
    assert Message.objects.count() == 2


def test_a_message_whose_report_is_still_open_is_kept(history):
    old, _ = history
    ProviderCall.objects.filter(message_id=old[0]).update(state=CallState.PENDING)
    assert "Deleted 4 messages" in run("feedback_purge")
    assert Message.objects.filter(pk=old[0]).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "0"], "--days must be a whole number"),
        (["--days", "ninety"], "--days must be a whole number"),
        (["--batch-size", "0"], "--batch-size must be a whole number from 1 to 100,000"),
        (["--batch-size", "1000000"], "--batch-size must be"),
        (["--batch-size", "many"], "--batch-size must be a whole number"),
        (["--days", "-5"], "--days must be a whole number"),
    ],
)
def test_bad_arguments_raise_command_error_and_delete_nothing(history, args, message):
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        run("feedback_purge", *args)
    assert snapshot() == before


def test_refused_sends_older_than_the_cutoff_go_too(history):
    now = timezone.now()
    for days in (100, 95, 10):
        BlockedSend.objects.create(
            at=now - timedelta(days=days),
            code="recipient_rate",
            provider="locmem",
            purpose="otp",
            channel="sms",
        )
    assert "and 2 refused sends (dry run)" in run("feedback_purge", "--dry-run")
    assert BlockedSend.objects.count() == 3
    output = run("feedback_purge", "--batch-size", "1")
    assert "and 2 refused sends." in output
    assert [row.at.date() for row in BlockedSend.objects.all()] == [
        (now - timedelta(days=10)).date()
    ]


@pytest.mark.parametrize(
    ("batch_size", "progress"),
    [(1, [1, 2, 3, 4, 5]), (2, [2, 4, 5]), (5, [5]), (1000, [5])],
)
def test_every_batch_size_deletes_the_same_rows(history, batch_size, progress):
    # The five old messages share one sent_at: batches resume inside a run of equal times.
    old, recent = history
    done = []
    result = retention.purge(retention.cutoff(), batch_size=batch_size, progress=done.append)
    assert done == progress
    assert (result.messages, result.events, result.calls) == (5, 10, 5)
    assert set(Message.objects.values_list("pk", flat=True)) == set(recent)
    assert not MessageEvent.objects.filter(message_id__in=old).exists()
    assert MessageEvent.objects.filter(message_id__in=recent).count() == 2


def test_deletes_exactly_the_messages_sent_before_the_cutoff():
    cutoff = timezone.now() - timedelta(days=90)
    offsets = [timedelta(days=-3), timedelta(seconds=-1), timedelta(0), timedelta(seconds=1)]
    ids = [make_message(sent_at=cutoff + offset).pk for offset in offsets]
    for pk in ids:
        services.confirm(pk)
    ProviderCall.objects.update(state=CallState.SUCCEEDED)
    kept_events = MessageEvent.objects.filter(message_id__in=ids[2:]).count()
    assert retention.purge(cutoff, batch_size=1).messages == 2
    assert set(Message.objects.values_list("pk", flat=True)) == set(ids[2:])
    assert MessageEvent.objects.count() == kept_events
    assert set(ProviderCall.objects.values_list("message_id", flat=True)) == set(ids[2:])


def test_no_message_row_is_loaded_to_delete_it(history):
    with CaptureQueriesContext(connection) as queries:
        assert retention.purge(retention.cutoff(), batch_size=2).messages == 5
    assert not any("recipient_hash" in query["sql"] for query in queries.captured_queries)


def test_a_delete_signal_receiver_still_hears_of_every_purged_message(history):
    old, _ = history
    heard = []

    def receiver(sender, instance, **kwargs):
        heard.append(instance.pk)

    post_delete.connect(receiver, sender=Message)
    try:
        assert "Deleted 5 messages" in run("feedback_purge", "--batch-size", "2")
    finally:
        post_delete.disconnect(receiver, sender=Message)
    assert sorted(heard) == sorted(old)


def test_a_kept_verification_loses_its_purged_converting_message():
    now = timezone.now()
    first = make_message(verification="spans", sent_at=now - timedelta(days=100))
    services.confirm(first)
    ProviderCall.objects.update(state=CallState.SUCCEEDED)
    make_message(verification="spans", sent_at=now - timedelta(days=1))
    assert Verification.objects.get().converting_message_id == first.pk
    assert retention.purge(retention.cutoff()).messages == 1
    verification = Verification.objects.get()
    assert verification.converting_message_id is None
    assert verification.converted_at is not None
