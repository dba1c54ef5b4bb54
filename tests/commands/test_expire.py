"""``manage.py feedback_expire``: what the schedule does, now; ``--dry-run`` only counts."""

from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.models import Message
from feedback_app.states import Feedback
from tests.factories import make_message

from .conftest import run, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def overdue():
    now = timezone.now()
    old = [make_message(sent_at=now - timedelta(hours=2)) for _ in range(3)]
    make_message(sent_at=now)  # its window (600 s in the test settings) is still open
    return old


def test_dry_run_counts_and_changes_nothing(overdue):
    before = snapshot()
    assert run("feedback_expire", "--dry-run") == "3 overdue messages would expire (dry run).\n"
    assert snapshot() == before


def test_expires_the_overdue_messages_only(overdue):
    assert "Expired 3 overdue messages." in run("feedback_expire")
    assert Message.objects.filter(feedback=Feedback.EXPIRED).count() == 3
    assert Message.objects.filter(feedback=Feedback.PENDING).count() == 1
    assert "Expired 0 overdue messages." in run("feedback_expire")


def test_progress_is_a_line_per_tenth_of_the_overdue_messages(settings):
    now = timezone.now()
    for _ in range(12):
        make_message(sent_at=now - timedelta(hours=2))
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "EXPIRE_BATCH": 5}
    output = run("feedback_expire")
    # Batches of 5: after 5, 10 and 12 of 12 (call_command's output is not a terminal).
    assert output.splitlines() == [
        "  5 / 12 messages",
        "  10 / 12 messages",
        "  12 / 12 messages",
        "Expired 12 overdue messages.",
    ]
    assert Message.objects.filter(feedback=Feedback.EXPIRED).count() == 12


def test_no_progress_prints_only_the_result(overdue):
    assert run("feedback_expire", "--no-progress") == "Expired 3 overdue messages.\n"
