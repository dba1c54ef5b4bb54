"""Confirmation by signed token: ``POST api/confirm/<token>/`` and the link ``c/<token>/``."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.core import signing
from django.utils import timezone

import feedback_app
from feedback_app.models import Message, MessageEvent
from feedback_app.states import Feedback, Source
from feedback_app.tokens import (
    ExpiredToken,
    InvalidToken,
    confirmation_token,
    message_from_token,
    message_id_from_token,
)

from ..factories import make_message
from .conftest import API, json_client, make_user

pytestmark = pytest.mark.django_db


def api_url(token: str) -> str:
    return f"{API}/confirm/{token}/"


def link_url(token: str) -> str:
    return f"/feedback/c/{token}/"


def assert_unchanged(message: Message) -> None:
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING
    assert not MessageEvent.objects.filter(message=message, kind="feedback").exists()


def _tampered(token: str) -> str:
    value, signature = token.split(".")
    other = "A" if signature[0] != "A" else "B"
    return f"{value}.{other}{signature[1:]}"


# -- the token itself --------------------------------------------------------------------------


def test_confirmation_token_is_exported_from_the_package(message):
    assert feedback_app.confirmation_token is confirmation_token
    token = feedback_app.confirmation_token(message)
    assert message_from_token(token) == message


def test_token_is_short_and_url_safe(message):
    token = confirmation_token(message)
    assert len(token) < 80
    assert all(c.isalnum() or c in "-_." for c in token)


def test_token_can_be_made_from_the_id_before_the_message_is_tracked():
    message_id = uuid.uuid4()
    token = confirmation_token(message_id)
    message = make_message(message_id=message_id)
    assert message_from_token(token) == message
    assert confirmation_token(str(message_id)) == token


def test_each_message_has_its_own_token():
    first, second = make_message(), make_message()
    assert confirmation_token(first) != confirmation_token(second)
    assert message_id_from_token(confirmation_token(second)) == second.pk


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "a.b",
        "x" * 500,
        signing.dumps("anything"),  # another of the site's signed values
        signing.Signer(sep=".").sign("AAAAAAAAAAAAAAAAAAAAAA"),  # right shape, wrong salt
    ],
)
def test_bad_and_foreign_tokens_are_invalid(token):
    with pytest.raises(InvalidToken):
        message_id_from_token(token)


def test_a_tampered_token_is_invalid(message):
    with pytest.raises(InvalidToken):
        message_from_token(_tampered(confirmation_token(message)))


def test_a_token_signed_with_another_secret_key_is_invalid(message, settings):
    token = confirmation_token(message)
    settings.SECRET_KEY = "another-secret-key-of-another-site-0123456789"
    with pytest.raises(InvalidToken):
        message_from_token(token)


def test_a_token_made_before_a_key_rotation_still_works(message, settings):
    token = confirmation_token(message)
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "the-new-secret-key-0123456789-0123456789"
    assert message_from_token(token) == message


def test_the_token_expires_with_the_feedback_window():
    message = make_message(sent_at=timezone.now() - timedelta(minutes=11))  # window: 10 minutes
    with pytest.raises(ExpiredToken):
        message_from_token(confirmation_token(message))


# -- POST api/confirm/<token>/ -----------------------------------------------------------------


def test_token_confirms_without_login(anonymous, message):
    response = anonymous.post(api_url(confirmation_token(message)))
    assert response.status_code == 200
    assert response.json() == {
        "changed": True,
        "message": {
            "id": str(message.pk),
            "feedback": "confirmed",
            "confirmed_at": response.json()["message"]["confirmed_at"],
            "confirmed_late": False,
        },
    }
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED
    event = MessageEvent.objects.get(message=message, kind="feedback")
    assert (event.source, event.actor) == (Source.API, "token")


def test_token_confirms_exactly_its_message(anonymous):
    mine, other = make_message(), make_message()
    anonymous.post(api_url(confirmation_token(mine)))
    assert_unchanged(other)


def test_confirming_twice_by_token_is_not_an_error(anonymous, message):
    token = confirmation_token(message)
    anonymous.post(api_url(token))
    again = anonymous.post(api_url(token))
    assert again.status_code == 200
    assert again.json()["changed"] is False


def test_token_response_shows_nothing_an_operator_keeps_private(anonymous):
    message = make_message(metadata={"internal": "secret-flow"}, sender="ACME")
    text = anonymous.post(api_url(confirmation_token(message))).content.decode()
    for private in ("secret-flow", "ACME", message.provider_message_id, message.recipient_masked):
        assert private not in text


def test_token_works_for_a_logged_in_browser_without_csrf(db, message):
    client = json_client(enforce_csrf_checks=True)
    client.force_login(make_user())
    assert client.post(api_url(confirmation_token(message))).status_code == 200


def test_tampered_token_is_400_and_changes_nothing(anonymous, message):
    response = anonymous.post(api_url(_tampered(confirmation_token(message))))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"
    assert_unchanged(message)


@pytest.mark.parametrize("token", ["garbage", "a.b.c", signing.dumps({"m": "x"})])
def test_foreign_token_is_400(anonymous, token):
    response = anonymous.post(api_url(token))
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_token"


def test_expired_token_is_400_and_changes_nothing(anonymous):
    message = make_message(sent_at=timezone.now() - timedelta(minutes=11))
    response = anonymous.post(api_url(confirmation_token(message)))
    assert response.status_code == 400
    assert response.json()["code"] == "token_expired"
    assert_unchanged(message)


def test_token_of_a_deleted_message_is_404(anonymous, message):
    token = confirmation_token(message)
    message.delete()
    response = anonymous.post(api_url(token))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_token_endpoint_takes_only_post(anonymous, message):
    response = anonymous.get(api_url(confirmation_token(message)))
    assert response.status_code == 405
    assert_unchanged(message)


# -- GET c/<token>/ ----------------------------------------------------------------------------


def test_link_confirms_and_redirects(client, message, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "CONFIRM_REDIRECT_URL": "/welcome/"}
    response = client.get(link_url(confirmation_token(message)))
    assert response.status_code == 302
    assert response["Location"] == "/welcome/"
    assert response["Referrer-Policy"] == "no-referrer"
    assert response["Cache-Control"] == "no-store"
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED
    assert MessageEvent.objects.get(message=message, kind="feedback").actor == "link"


def test_link_redirect_may_be_a_url_name(client, message, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "CONFIRM_REDIRECT_URL": "admin:index"}
    response = client.get(link_url(confirmation_token(message)))
    assert response["Location"] == "/admin/"


def test_bad_link_is_400_and_changes_nothing(client, message):
    response = client.get(link_url(_tampered(confirmation_token(message))))
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert_unchanged(message)


def test_expired_link_is_400(client):
    message = make_message(sent_at=timezone.now() - timedelta(minutes=11))
    response = client.get(link_url(confirmation_token(message)))
    assert response.status_code == 400
    assert b"expired" in response.content
    assert_unchanged(message)


def test_link_of_a_deleted_message_is_404(client, message):
    token = confirmation_token(message)
    message.delete()
    assert client.get(link_url(token)).status_code == 404


def test_bad_link_redirects_where_the_settings_say(client, message, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "CONFIRM_INVALID_URL": "/sorry/"}
    response = client.get(link_url("garbage"))
    assert (response.status_code, response["Location"]) == (302, "/sorry/")


def test_link_does_not_confirm_on_post_or_head(client, message):
    token = confirmation_token(message)
    assert client.post(link_url(token)).status_code == 405
    assert client.head(link_url(token)).status_code == 405
    assert_unchanged(message)
