"""Values no database column takes (NUL characters, NaN and infinity in JSON) are refused as
``ValidationError`` naming the field before anything is written or sent, on SQLite and on
PostgreSQL (where they would otherwise end in a ``DataError``); and an insert is reported as a
duplicate only when the unique constraint is what failed."""

from __future__ import annotations

import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection

from feedback_app import services
from feedback_app.models import Message, MessageEvent
from feedback_app.providers import locmem
from feedback_app.states import Channel

from .factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db

CHANNEL_ARN = "arn:aws:chime:us-east-1:111122223333:app-instance/a/channel/b"

#: (what track() is given, the field the error must name)
BAD_VALUES = [
    ({"provider_message_id": "SM\x00123"}, "provider_message_id"),
    ({"sender": "OTP\x00"}, "sender"),
    ({"provider_status": "sent\x00"}, "provider_status"),
    ({"channel": Channel.CHAT, "to": f"{CHANNEL_ARN}\x00"}, "to"),
    ({"channel": Channel.CHAT, "to": f"{CHANNEL_ARN[:-4]}\x00xyz"}, "to"),
    ({"metadata": {"flow": "log\x00in"}}, "metadata"),
    ({"metadata": {"fl\x00ow": "login"}}, "metadata"),
    ({"metadata": {"nested": [{"deep": "\x00"}]}}, "metadata"),
    ({"metadata": {"score": float("nan")}}, "metadata"),
    ({"metadata": {"score": float("inf")}}, "metadata"),
    ({"metadata": {"scores": [1.0, float("-inf")]}}, "metadata"),
]


def assert_refused(overrides: dict, field: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        make_message(**overrides)
    assert field in excinfo.value.message_dict, excinfo.value.message_dict
    assert Message.objects.count() == 0
    assert MessageEvent.objects.count() == 0


@pytest.mark.parametrize(("overrides", "field"), BAD_VALUES)
def test_track_refuses_values_no_database_stores(overrides, field):
    assert_refused(overrides, field)


@pytest.mark.postgres
def test_postgresql_gets_a_validation_error_not_a_data_error():
    # PostgreSQL refuses NUL in text and NaN in jsonb with a DataError, after the INSERT.
    assert connection.vendor == "postgresql"
    for overrides, field in BAD_VALUES:
        assert_refused(overrides, field)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"sender": "OTP\x00"}, "sender"),
        ({"metadata": {"flow": "\x00"}}, "metadata"),
        ({"metadata": {"score": float("nan")}}, "metadata"),
        ({"channel": Channel.CHAT, "to": f"{CHANNEL_ARN}\x00"}, "to"),
    ],
)
def test_send_refuses_them_before_calling_the_provider(overrides, field):
    fields = {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1", **overrides}
    with pytest.raises(ValidationError) as excinfo:
        services.send(**fields)
    assert field in excinfo.value.message_dict
    assert not locmem.outbox
    assert Message.objects.count() == 0


def test_a_nul_in_a_looked_up_provider_id_is_a_validation_error():
    with pytest.raises(ValidationError) as excinfo:
        services.confirm(provider="locmem", provider_message_id="SM\x00")
    assert "provider_message_id" in excinfo.value.message_dict


def test_a_nul_in_the_actor_is_dropped_not_a_database_error():
    message = make_message()
    assert services.confirm(message, actor="support\x00bot") is True
    assert message.events.get(kind="feedback").actor == "supportbot"


def test_metadata_that_is_not_json_is_refused():
    loop: dict = {}
    loop["self"] = loop
    for metadata in ({"at": object()}, loop, {"big": 10**5000}):
        with pytest.raises(ValidationError) as excinfo:
            make_message(metadata=metadata)
        assert "metadata" in excinfo.value.message_dict
    assert Message.objects.count() == 0


def test_a_message_id_taken_twice_names_the_message_id_not_the_provider_id():
    first = make_message()
    with pytest.raises(ValidationError) as excinfo:
        make_message(message_id=first.pk)
    assert excinfo.value.error_dict["message_id"][0].code == "duplicate"
    assert "provider_message_id" not in excinfo.value.message_dict
    assert Message.objects.count() == 1


def test_an_integrity_error_that_is_no_duplicate_is_not_reported_as_one(monkeypatch):
    def broken_create(*args, **kwargs):
        raise IntegrityError("CHECK constraint failed: detail")

    monkeypatch.setattr(MessageEvent.objects, "create", broken_create)
    with pytest.raises(IntegrityError):
        make_message(message_id=uuid.uuid4())
    assert Message.objects.count() == 0
