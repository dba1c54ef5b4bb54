"""Confirm and fail by id and by the provider's id: permissions, no-ops, what changes."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.states import Feedback, Source

from ..factories import make_message
from .conftest import API, make_user, token_client

pytestmark = pytest.mark.django_db


def url(message: Message | uuid.UUID | str, action: str = "confirm") -> str:
    pk = message.pk if isinstance(message, Message) else message
    return f"{API}/messages/{pk}/{action}/"


BY_PROVIDER_ID = f"{API}/messages/confirm/"


def test_confirm_returns_the_message_and_changed(client_with, message):
    response = client_with("confirm_message").post(url(message))
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] is True
    assert body["message"]["id"] == str(message.pk)
    assert body["message"]["feedback"] == Feedback.CONFIRMED
    assert body["message"]["confirmed_at"] is not None
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED


def test_confirming_twice_is_200_with_changed_false(client_with, message):
    client = client_with("confirm_message")
    assert client.post(url(message)).json()["changed"] is True
    again = client.post(url(message))
    assert again.status_code == 200
    assert again.json()["changed"] is False
    assert MessageEvent.objects.filter(message=message, kind="feedback").count() == 1


def test_confirm_goes_through_the_service_event_and_outbox(db, message):
    user = make_user("confirm_message")
    token_client(user).post(url(message))
    event = MessageEvent.objects.get(message=message, kind="feedback")
    assert (event.source, event.actor) == (Source.API, user.username)
    assert ProviderCall.objects.filter(message=message, payload={"outcome": "confirmed"}).exists()


def test_confirm_with_a_time_after_the_deadline_is_late(client_with):
    message = make_message(sent_at=timezone.now() - timedelta(hours=1))
    at = message.feedback_deadline + timedelta(seconds=1)
    response = client_with("confirm_message").post(url(message), {"at": at.isoformat()})
    assert response.json()["message"]["confirmed_late"] is True
    message.refresh_from_db()
    assert message.confirmed_at == at


def test_fail_then_confirm_is_a_late_conversion(client_with, message):
    client = client_with("confirm_message")
    failed = client.post(url(message, "fail"))
    assert failed.json()["changed"] is True
    assert failed.json()["message"]["feedback"] == Feedback.FAILED
    confirmed = client.post(url(message)).json()
    assert confirmed["changed"] is True and confirmed["message"]["confirmed_late"] is True


def test_fail_after_confirm_is_a_noop(client_with, message):
    client = client_with("confirm_message")
    client.post(url(message))
    response = client.post(url(message, "fail"))
    assert response.status_code == 200
    assert response.json()["changed"] is False
    assert response.json()["message"]["feedback"] == Feedback.CONFIRMED


@pytest.mark.parametrize("action", ["confirm", "fail"])
def test_unknown_or_malformed_id_is_404(client_with, action):
    client = client_with("confirm_message")
    assert client.post(url(uuid.uuid4(), action)).status_code == 404
    assert client.post(url("nope", action)).status_code == 404


@pytest.mark.parametrize("action", ["confirm", "fail"])
@pytest.mark.parametrize("codenames", [(), ("view_message",), ("view_message", "send_message")])
def test_a_frontend_cannot_change_a_message_by_id_without_the_permission(
    client_with, message, action, codenames
):
    client = client_with(*codenames)
    existing = client.post(url(message, action))
    unknown = client.post(url(uuid.uuid4(), action))
    assert existing.status_code == unknown.status_code == 403
    assert existing.json() == unknown.json()
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING
    assert not MessageEvent.objects.filter(kind="feedback").exists()


@pytest.mark.parametrize("action", ["confirm", "fail"])
def test_anonymous_cannot_change_a_message(anonymous, message, action):
    response = anonymous.post(url(message, action))
    assert response.status_code == 401
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING


def test_confirm_by_provider_id(client_with, message):
    response = client_with("confirm_message").post(
        BY_PROVIDER_ID,
        {"provider": "locmem", "provider_message_id": message.provider_message_id},
    )
    assert response.status_code == 200
    assert response.json()["changed"] is True
    assert response.json()["message"]["id"] == str(message.pk)
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED


def test_confirm_by_provider_id_twice_is_not_an_error(client_with, message):
    client = client_with("confirm_message")
    data = {"provider": "locmem", "provider_message_id": message.provider_message_id}
    client.post(BY_PROVIDER_ID, data)
    again = client.post(BY_PROVIDER_ID, data)
    assert again.status_code == 200 and again.json()["changed"] is False


def test_confirm_by_provider_id_of_another_provider_is_404(client_with, message):
    response = client_with("confirm_message").post(
        BY_PROVIDER_ID,
        {"provider": "silent", "provider_message_id": message.provider_message_id},
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"provider_message_id": "x"}, "provider"),
        ({"provider": "locmem"}, "provider_message_id"),
        ({"provider": "nope", "provider_message_id": "x"}, "provider"),
        ({"provider": "locmem", "provider_message_id": 7}, "provider_message_id"),
        ({"provider": "locmem", "provider_message_id": "x" * 129}, "provider_message_id"),
    ],
)
def test_confirm_by_provider_id_with_bad_fields_is_400(client_with, message, data, field):
    response = client_with("confirm_message").post(BY_PROVIDER_ID, data)
    assert response.status_code == 400
    assert field in response.json()["fields"]


def test_confirm_by_provider_id_needs_the_permission(client_with, message):
    response = client_with("view_message").post(
        BY_PROVIDER_ID, {"provider": "locmem", "provider_message_id": message.provider_message_id}
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING


@pytest.mark.parametrize(
    "at",
    [
        "2024-01-01T10:00:00",  # no offset
        "3000-01-01T00:00:00Z",  # future
        "1999-12-31T23:59:59Z",  # before anything was sent
        "yesterday",
        12345,
    ],
)
def test_confirm_with_a_bad_time_is_400_and_changes_nothing(client_with, message, at):
    response = client_with("confirm_message").post(url(message), {"at": at})
    assert response.status_code == 400
    assert "at" in response.json()["fields"]
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING


PUBLIC_FIELDS = {"id", "feedback", "confirmed_at", "confirmed_late"}


@pytest.mark.parametrize("path", ["confirm", "fail", "by_provider_id"])
def test_without_view_permission_a_transition_shows_only_the_public_fields(db, path):
    message = make_message(metadata={"flow": "secret-flow"}, sender="ACME")
    services.confirm(message)  # already confirmed: fail is a no-op that must still tell nothing
    client = token_client(make_user("confirm_message"))
    if path == "by_provider_id":
        response = client.post(
            BY_PROVIDER_ID,
            {"provider": "locmem", "provider_message_id": message.provider_message_id},
        )
    else:
        response = client.post(url(message, path))
    assert response.status_code == 200
    body = response.json()
    assert body["changed"] is False
    assert set(body["message"]) == PUBLIC_FIELDS
    assert body["message"]["feedback"] == Feedback.CONFIRMED
    text = response.content.decode()
    for private in ("secret-flow", "ACME", message.recipient_masked, message.provider_message_id):
        assert private not in text
    # The same user may not read the message either.
    assert client.get(f"{API}/messages/{message.pk}/").status_code == 403


def test_with_view_permission_a_transition_shows_the_whole_message(client_with, message):
    body = client_with("confirm_message", "view_message").post(url(message)).json()
    assert body["message"]["recipient"] == message.recipient_masked
    assert body["message"]["provider_message_id"] == message.provider_message_id


def test_anonymous_cannot_confirm_by_provider_id(anonymous, message):
    response = anonymous.post(
        BY_PROVIDER_ID, {"provider": "locmem", "provider_message_id": message.provider_message_id}
    )
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING


def test_the_answer_follows_each_callers_permission_and_the_current_time_zone(db):
    """The answer's message serializers are built once per process: one caller's view must not
    leak into the next answer, and times are shown in the time zone active at each request."""
    viewer = token_client(make_user("confirm_message", "view_message"))
    confirmer = token_client(make_user("confirm_message"))
    for client, fields in ((viewer, None), (confirmer, PUBLIC_FIELDS), (viewer, None)):
        body = client.post(url(make_message())).json()
        if fields is None:
            assert "recipient" in body["message"] and "provider" in body["message"]
        else:
            assert set(body["message"]) == fields
    message = make_message()
    with timezone.override("Asia/Kolkata"):
        confirmed_at = confirmer.post(url(message)).json()["message"]["confirmed_at"]
    assert confirmed_at.endswith("+05:30")
    assert confirmer.post(url(message)).json()["message"]["confirmed_at"].endswith("Z")
