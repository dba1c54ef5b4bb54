"""Throttle scopes ``feedback_app.send`` and ``feedback_app.confirm``: configurable, JSON 429."""

from __future__ import annotations

import pytest

from feedback_app.api.throttling import ConfirmThrottle, SendThrottle
from feedback_app.providers import locmem
from feedback_app.tokens import confirmation_token

from ..factories import NUMBERS, make_message
from .conftest import API

pytestmark = pytest.mark.django_db

SEND = f"{API}/messages/send/"
BODY = {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1"}


@pytest.fixture
def rates(settings):
    def set_rates(**scopes: str | None) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {f"feedback_app.{k}": v for k, v in scopes.items()},
        }

    return set_rates


def test_send_is_throttled_at_the_configured_rate(client_with, rates):
    rates(send="2/minute")
    client = client_with("send_message")
    assert [client.post(SEND, BODY).status_code for _ in range(3)] == [201, 201, 429]
    response = client.post(SEND, BODY)
    assert response.json()["code"] == "throttled"
    assert int(response["Retry-After"]) > 0
    assert len(locmem.outbox) == 2


def test_throttles_count_per_user(client_with, rates):
    rates(send="1/minute")
    assert client_with("send_message").post(SEND, BODY).status_code == 201
    assert client_with("send_message").post(SEND, BODY).status_code == 201


def test_confirm_scope_covers_id_provider_id_and_token(client_with, anonymous, rates):
    rates(confirm="2/minute")
    client = client_with("confirm_message")
    first, second = make_message(), make_message()
    assert client.post(f"{API}/messages/{first.pk}/confirm/").status_code == 200
    assert client.post(f"{API}/messages/{first.pk}/fail/").status_code == 200
    by_provider = client.post(
        f"{API}/messages/confirm/",
        {"provider": "locmem", "provider_message_id": second.provider_message_id},
    )
    assert by_provider.status_code == 429
    anonymous.post(f"{API}/confirm/{confirmation_token(second)}/")
    anonymous.post(f"{API}/confirm/{confirmation_token(second)}/")
    assert anonymous.post(f"{API}/confirm/{confirmation_token(second)}/").status_code == 429


def test_the_link_is_throttled_too(client, rates):
    rates(confirm="1/minute")
    token = confirmation_token(make_message())
    assert client.get(f"/feedback/c/{token}/").status_code == 302
    response = client.get(f"/feedback/c/{token}/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0


def test_a_scope_set_to_none_is_not_throttled(client_with, rates):
    rates(send=None)
    client = client_with("send_message")
    assert all(client.post(SEND, BODY).status_code == 201 for _ in range(5))


def test_a_scope_the_host_did_not_list_gets_the_default_rate(rates):
    rates()
    assert SendThrottle().get_rate() == SendThrottle.default_rate
    assert ConfirmThrottle().get_rate() == ConfirmThrottle.default_rate
