"""``manage.py feedback_sync``: open statuses are polled, stale ``sync_statuses`` fetched."""

from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from feedback_app.models import Message
from feedback_app.providers.base import Provider, RetryableError, StatusUpdate
from feedback_app.states import Delivery
from tests.factories import make_message

from .conftest import run, snapshot

pytestmark = pytest.mark.django_db

asked: list[str] = []


class StaleSentProvider(Provider):
    """Like Twilio: ``sent`` may be the last status pushed; a fetch says ``delivered``."""

    sync_statuses = frozenset({Delivery.SENT})

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        asked.append(message.provider_message_id)
        if message.provider_message_id.startswith("broken"):
            raise RetryableError("throttled", code="429")
        return StatusUpdate(message.provider_message_id, Delivery.DELIVERED, "delivered")


class PendingProvider(StaleSentProvider):
    """Like Chime: ``queued`` is polled while young; ``sent`` is never asked about."""

    sync_statuses = frozenset()
    poll_statuses = frozenset({Delivery.QUEUED})


@pytest.fixture(autouse=True)
def providers(settings):
    asked.clear()
    with override_settings(
        FEEDBACK_APP={
            **settings.FEEDBACK_APP,
            "PROVIDERS": {
                "stale": {"BACKEND": f"{__name__}.StaleSentProvider"},
                "pending": {"BACKEND": f"{__name__}.PendingProvider"},
            },
            "SYNC_STALE_AFTER": 3600,
            "SYNC_MAX_AGE": 86400,
            "POLL_MAX_AGE": 3600,
            "POLL_BATCH": 2,
        }
    ):
        yield


def message(provider: str, name: str, status: str, age: timedelta) -> Message:
    return make_message(
        provider=provider,
        provider_message_id=name,
        delivery_status=status,
        sent_at=timezone.now() - age,
    )


def test_asks_about_stale_and_open_statuses_only():
    message("stale", "stale-sent", Delivery.SENT, timedelta(hours=2))
    message("stale", "young-sent", Delivery.SENT, timedelta(minutes=10))
    message("stale", "too-old-sent", Delivery.SENT, timedelta(days=3))
    message("stale", "stale-queued", Delivery.QUEUED, timedelta(hours=2))
    message("pending", "young-pending", Delivery.QUEUED, timedelta(minutes=10))
    message("pending", "old-pending", Delivery.QUEUED, timedelta(hours=2))
    message("pending", "sent-chat", Delivery.SENT, timedelta(hours=2))
    message("stale", "broken-sent", Delivery.SENT, timedelta(hours=3))

    output = run("feedback_sync", "--no-progress")

    assert sorted(asked) == ["broken-sent", "stale-sent", "young-pending"]
    assert "Asked about 3 messages: 2 changed status, 1 provider errors." in output
    delivered = Message.objects.filter(delivery_status=Delivery.DELIVERED)
    assert set(delivered.values_list("provider_message_id", flat=True)) == {
        "stale-sent",
        "young-pending",
    }
    # Delivered now: a second run has nothing left to ask but the one that failed.
    asked.clear()
    run("feedback_sync", "--no-progress")
    assert asked == ["broken-sent"]


def test_limit_asks_about_the_oldest_first():
    for hours in (5, 4, 3, 2):
        message("stale", f"sent-{hours}h", Delivery.SENT, timedelta(hours=hours))
    assert "Asked about 3 messages" in run("feedback_sync", "--limit", "3")
    assert asked == ["sent-5h", "sent-4h", "sent-3h"]


@pytest.mark.parametrize("limit", ["0", "-1", "many"])
def test_bad_limit_raises_command_error_and_asks_nothing(limit):
    message("stale", "stale-sent", Delivery.SENT, timedelta(hours=2))
    before = snapshot()
    with pytest.raises(CommandError, match="--limit must be a whole number"):
        run("feedback_sync", "--limit", limit)
    assert asked == [] and snapshot() == before
