"""``manage.py feedback_retry``: failed and given-up calls back in the queue, filtered."""

from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from feedback_app import services
from feedback_app.models import ProviderCall
from feedback_app.providers import locmem
from feedback_app.states import CallState
from tests.factories import make_message

from .conftest import run, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls():
    """Three locmem report calls: failed an hour ago, gave up three days ago, and succeeded."""
    now = timezone.now()
    made = []
    for state, ended in (
        (CallState.FAILED, now - timedelta(hours=1)),
        (CallState.GAVE_UP, now - timedelta(days=3)),
        (CallState.SUCCEEDED, now - timedelta(hours=1)),
    ):
        message = make_message()
        services.confirm(message)
        call = ProviderCall.objects.get(message=message)
        ProviderCall.objects.filter(pk=call.pk).update(state=state, completed_at=ended, attempts=4)
        made.append(call)
    locmem.reset()
    return made


def states() -> list[str]:
    return list(ProviderCall.objects.order_by("pk").values_list("state", flat=True))


def test_dry_run_counts_and_changes_nothing(calls):
    before = snapshot()
    assert "2 calls would be re-queued (dry run)." in run("feedback_retry", "--dry-run")
    assert "1 calls would be" in run("feedback_retry", "--dry-run", "--since", "1d")
    assert "1 calls would be" in run("feedback_retry", "--dry-run", "--state", "gave_up")
    assert "0 calls would be" in run("feedback_retry", "--dry-run", "--provider", "twilio")
    assert snapshot() == before


def test_requeues_matching_calls_and_delivers_them(calls, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert "Re-queued 1 calls." in run("feedback_retry", "--until", "1d")
    # The task queue runs inline in the tests: the re-queued call is delivered at once.
    assert states() == [CallState.FAILED, CallState.SUCCEEDED, CallState.SUCCEEDED]
    assert len(locmem.reports) == 1
    with django_capture_on_commit_callbacks(execute=True):
        assert "Re-queued 1 calls." in run("feedback_retry", "--operation", "report_feedback")
    assert states() == [CallState.SUCCEEDED] * 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--state", "succeeded"], "--state must be one of failed, gave_up"),
        (["--operation", "send"], "--operation must be one of"),
        (["--since", "soon"], "--since must be"),
    ],
)
def test_bad_arguments_raise_command_error_and_change_nothing(calls, args, message):
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        run("feedback_retry", *args)
    assert snapshot() == before
