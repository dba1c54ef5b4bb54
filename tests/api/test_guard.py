"""The guard through the API: 429 with Retry-After for a rate limit, 403 for a block."""

import pytest
from django.conf import settings
from django.test import override_settings

from feedback_app import blocks
from feedback_app.api.schema import openapi_schema
from feedback_app.models import BlockedSend, Message
from feedback_app.providers import locmem
from tests.factories import NUMBERS

from .conftest import API

SEND = f"{API}/messages/send/"
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("window_start")]


def guard_settings(**guard):
    return override_settings(FEEDBACK_APP={**settings.FEEDBACK_APP, "GUARD": guard})


def payload(to=NUMBERS["US"]):
    return {"provider": "locmem", "to": to, "body": "code 123456"}


@guard_settings(RECIPIENT_LIMIT=[1, 600])
def test_a_rate_limit_answers_429_with_retry_after_and_the_code(client_with):
    client = client_with("send_message")
    assert client.post(SEND, payload()).status_code == 201
    response = client.post(SEND, payload())
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 600
    body = response.json()
    assert body["code"] == "recipient_rate"
    assert body["fields"] == {}
    assert NUMBERS["US"] not in response.content.decode()
    assert len(locmem.outbox) == 1 and Message.objects.count() == 1


def test_a_blocked_prefix_answers_403_with_the_code(client_with):
    blocks.block("prefix", "+120", reason="pumping")
    response = client_with("send_message").post(SEND, payload())
    assert response.status_code == 403
    assert response.json()["code"] == "prefix_blocked"
    assert "Retry-After" not in response
    assert not locmem.outbox
    assert BlockedSend.objects.get().code == "prefix_blocked"


@guard_settings(RECIPIENT_LIMIT=None, CLIENT_LIMIT=[1, 600])
def test_the_view_passes_the_user_as_the_client(client_with):
    first, second = client_with("send_message"), client_with("send_message")
    assert first.post(SEND, payload(NUMBERS["US"])).status_code == 201
    response = first.post(SEND, payload(NUMBERS["GB"]))
    assert response.json()["code"] == "client_rate"
    assert BlockedSend.objects.get().client_kind == "user"
    assert second.post(SEND, payload(NUMBERS["GB"])).status_code == 201


def test_the_schema_documents_the_guard_codes():
    responses = openapi_schema()["paths"]["/feedback/api/messages/send/"]["post"]["responses"]
    assert "prefix_blocked" in responses["403"]["description"]
    assert "recipient_rate" in responses["429"]["description"]
