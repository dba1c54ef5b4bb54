"""``manage.py feedback_purge``: retention in batches, interruptible, and re-runnable."""

from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from feedback_app import retention, services
from feedback_app.models import BlockedSend, Message, MessageEvent, ProviderCall
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
