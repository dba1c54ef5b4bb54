"""Polling open statuses: who is asked, about which messages, and what a poll answer changes."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, ClassVar

import pytest
from django.utils import timezone

from feedback_app import polling, tasks
from feedback_app.models import Message, MessageEvent
from feedback_app.providers import (
    PermanentError,
    Provider,
    ProviderError,
    RetryableError,
    StatusUpdate,
)
from feedback_app.states import Delivery, EventKind, Source

from .factories import make_message

pytestmark = pytest.mark.django_db


class ScriptedProvider(Provider):
    """Answers polls from ``answers`` (provider message id -> update, error or None)."""

    poll_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})
    answers: ClassVar[dict[str, StatusUpdate | ProviderError | None]] = {}
    asked: ClassVar[list[str]] = []
    #: Provider message ids whose row another process deletes while the provider is asked.
    deleted_meanwhile: ClassVar[set[str]] = set()

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        self.asked.append(message.provider_message_id)
        if message.provider_message_id in self.deleted_meanwhile:
            Message.objects.filter(pk=message.pk).delete()
        answer = self.answers.get(message.provider_message_id)
        if isinstance(answer, ProviderError):
            raise answer
        return answer


@pytest.fixture(autouse=True)
def scripted(settings):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "scripted": {"BACKEND": "tests.test_polling.ScriptedProvider"},
        },
    }
    ScriptedProvider.answers = {}
    ScriptedProvider.asked = []
    ScriptedProvider.deleted_meanwhile = set()
    return ScriptedProvider


def open_message(provider_message_id: str, **fields: Any) -> Message:
    return make_message(provider="scripted", provider_message_id=provider_message_id, **fields)


def answer(provider_message_id: str, status: str, **fields: Any) -> None:
    ScriptedProvider.answers[provider_message_id] = StatusUpdate(
        provider_message_id=provider_message_id, delivery_status=status, **fields
    )


def test_a_polled_status_is_recorded_with_source_poll():
    message = open_message("m1")
    answer("m1", Delivery.DELIVERED, provider_status="SENT", detail={"status_detail": "ok"})

    assert tasks.poll_statuses() == 1

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "SENT")
    event = MessageEvent.objects.filter(message=message, source=Source.POLL).get()
    assert (event.kind, event.from_value, event.to_value) == (
        EventKind.DELIVERY,
        Delivery.QUEUED,
        Delivery.DELIVERED,
    )
    assert event.detail == {"provider_status": "SENT", "status_detail": "ok"}


def test_the_time_the_provider_gives_is_kept():
    message = open_message("m1")
    settled_at = timezone.now() - timedelta(seconds=30)
    answer("m1", Delivery.DELIVERED, at=settled_at)

    polling.poll_open_statuses()

    message.refresh_from_db()
    assert message.delivered_at == settled_at


def test_only_providers_with_poll_statuses_are_asked():
    make_message(provider="locmem")
    make_message(provider="silent", provider_message_id="silent-1")
    open_message("m1")

    polling.poll_open_statuses()

    assert ScriptedProvider.asked == ["m1"]


def test_only_messages_in_an_open_status_are_asked():
    open_message("queued")
    open_message("sent", delivery_status=Delivery.SENT)
    open_message("delivered", delivery_status=Delivery.DELIVERED)
    open_message("rejected", delivery_status=Delivery.REJECTED)

    polling.poll_open_statuses()

    assert sorted(ScriptedProvider.asked) == ["queued", "sent"]


def test_messages_sent_longer_ago_than_poll_max_age_are_no_longer_asked(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "POLL_MAX_AGE": 600}
    now = timezone.now()
    open_message("fresh", sent_at=now - timedelta(seconds=599))
    open_message("stale", sent_at=now - timedelta(seconds=601))

    polling.poll_open_statuses(now)

    assert ScriptedProvider.asked == ["fresh"]


def test_at_most_poll_batch_messages_per_provider_and_run(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "POLL_BATCH": 2}
    now = timezone.now()
    for age in (30, 20, 10):
        open_message(f"m{age}", sent_at=now - timedelta(seconds=age))

    polling.poll_open_statuses(now)

    assert ScriptedProvider.asked == ["m30", "m20"]


def test_a_provider_error_is_logged_and_the_other_messages_are_still_polled(caplog):
    first = open_message("m1", sent_at=timezone.now() - timedelta(seconds=20))
    second = open_message("m2", sent_at=timezone.now() - timedelta(seconds=10))
    ScriptedProvider.answers["m1"] = RetryableError("Rate exceeded", code="Throttled")
    answer("m2", Delivery.DELIVERED)

    with caplog.at_level(logging.WARNING, logger="feedback_app.polling"):
        assert polling.poll_open_statuses() == 1

    assert ScriptedProvider.asked == ["m1", "m2"]
    assert str(first.pk) in caplog.text and "[Throttled] Rate exceeded" in caplog.text
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.delivery_status, second.delivery_status) == (Delivery.QUEUED, Delivery.DELIVERED)


def test_a_message_whose_poll_failed_is_asked_again_next_run():
    message = open_message("m1")
    ScriptedProvider.answers["m1"] = PermanentError("no such message", code="NotFound")
    polling.poll_open_statuses()
    answer("m1", Delivery.FAILED)

    polling.poll_open_statuses()

    message.refresh_from_db()
    assert ScriptedProvider.asked == ["m1", "m1"]
    assert message.delivery_status == Delivery.FAILED


def test_no_answer_changes_nothing():
    message = open_message("m1")

    assert polling.poll_open_statuses() == 0

    assert ScriptedProvider.asked == ["m1"]
    assert not MessageEvent.objects.filter(message=message, source=Source.POLL).exists()


def test_an_answer_ranked_below_the_current_status_never_moves_it_back():
    message = open_message("m1", delivery_status=Delivery.SENT)
    answer("m1", Delivery.QUEUED, provider_status="PENDING")

    assert polling.poll_open_statuses() == 0

    message.refresh_from_db()
    assert message.delivery_status == Delivery.SENT


def test_a_settled_message_is_not_asked_again():
    open_message("m1")
    answer("m1", Delivery.DELIVERED)
    polling.poll_open_statuses()

    polling.poll_open_statuses()

    assert ScriptedProvider.asked == ["m1"]


def test_a_message_deleted_while_it_was_polled_does_not_stop_the_run():
    now = timezone.now()
    open_message("gone", sent_at=now - timedelta(seconds=20))
    kept = open_message("kept", sent_at=now - timedelta(seconds=10))
    ScriptedProvider.deleted_meanwhile = {"gone"}
    answer("gone", Delivery.DELIVERED)
    answer("kept", Delivery.DELIVERED)

    assert polling.poll_open_statuses(now) == 1

    kept.refresh_from_db()
    assert kept.delivery_status == Delivery.DELIVERED
    assert not Message.objects.filter(provider_message_id="gone").exists()


def test_the_least_recently_polled_messages_are_asked_first(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "POLL_BATCH": 2}
    now = timezone.now()
    for age in (30, 20, 10):
        open_message(f"m{age}", sent_at=now - timedelta(seconds=age))

    polling.poll_open_statuses(now)
    polling.poll_open_statuses(now + timedelta(minutes=1))
    polling.poll_open_statuses(now + timedelta(minutes=2))

    # Never polled first, then the one asked longest ago (the oldest sent among equals).
    assert ScriptedProvider.asked == ["m30", "m20", "m10", "m30", "m20", "m30"]


def test_messages_that_never_settle_do_not_starve_newer_ones(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "POLL_BATCH": 5}
    now = timezone.now()
    for number in range(5):
        open_message(f"stuck-{number}", sent_at=now - timedelta(minutes=50 - number))
        ScriptedProvider.answers[f"stuck-{number}"] = PermanentError("no", code="Forbidden")
    polling.poll_open_statuses(now)
    newer = open_message("newer", sent_at=now)
    answer("newer", Delivery.DELIVERED)
    ScriptedProvider.asked.clear()

    assert polling.poll_open_statuses(now + timedelta(minutes=1)) == 1

    assert ScriptedProvider.asked[0] == "newer"
    newer.refresh_from_db()
    assert newer.delivery_status == Delivery.DELIVERED


def test_polling_records_when_it_asked_without_touching_updated_at():
    message = open_message("m1")
    before = Message.objects.values_list("updated_at", flat=True).get(pk=message.pk)
    at = timezone.now() + timedelta(seconds=5)

    polling.poll_open_statuses(at)

    message.refresh_from_db()
    assert message.polled_at == at
    # updated_at marks changes the rollups must recount; a poll that changed nothing is none.
    assert message.updated_at == before
