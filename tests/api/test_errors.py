"""Errors: always JSON ``{code, detail, fields}``, a 4xx for bad input, nothing written, no 500."""

from __future__ import annotations

import base64
import json
import logging

import pytest

from feedback_app.models import IdempotencyRecord, Message, MessageEvent
from feedback_app.providers import locmem

from ..factories import NUMBERS
from .conftest import API

pytestmark = pytest.mark.django_db

TRACK = f"{API}/messages/"
SEND = f"{API}/messages/send/"
VALID_TRACK = {"provider": "locmem", "provider_message_id": "SM1", "to": NUMBERS["US"]}
VALID_SEND = {"provider": "locmem", "to": NUMBERS["US"], "body": "code 123456"}


@pytest.fixture
def writer(client_with):
    return client_with(
        "add_message", "send_message", "view_message", "view_report", "confirm_message"
    )


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"code", "detail", "fields"}
    assert isinstance(body["detail"], str) and body["detail"]
    if code is not None:
        assert body["code"] == code
    return body


def assert_nothing_written() -> None:
    assert not Message.objects.exists()
    assert not MessageEvent.objects.exists()
    assert not locmem.outbox


@pytest.mark.parametrize("url", [TRACK, SEND])
@pytest.mark.parametrize("raw", ["{", '{"provider": }', "not json", "\xff", '{"a": NaN}'])
def test_malformed_json_is_400_parse_error(writer, url, raw):
    response = writer.post(url, raw, content_type="application/json")
    assert_error(response, 400, "parse_error")
    assert_nothing_written()


@pytest.mark.parametrize(
    "raw",
    [
        '{"provider": "\\ud800", "provider_message_id": "SM1", "to": "+12015550123"}',
        '{"provider": "locmem", "provider_message_id": "SM1", "to": "+12015550123", '
        '"metadata": {"k": "x\\udfff"}}',
        '{"provider": "locmem", "provider_message_id": "SM1", "to": "+12015550123", '
        '"metadata": {"\\ud83d": 1}}',
    ],
)
def test_lone_surrogates_are_400(writer, raw):
    assert_error(writer.post(TRACK, raw, content_type="application/json"), 400, "parse_error")
    assert_nothing_written()


def test_deeply_nested_json_is_400(writer):
    raw = '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert_error(writer.post(TRACK, raw, content_type="application/json"), 400)
    assert_nothing_written()


@pytest.mark.parametrize("body", [[], [VALID_TRACK], "a string", 12, None])
def test_a_body_that_is_not_an_object_is_400(writer, body):
    response = writer.post(TRACK, json.dumps(body), content_type="application/json")
    body = assert_error(response, 400, "invalid")
    assert "non_field_errors" in body["fields"]
    assert_nothing_written()


def test_form_data_is_415(writer):
    response = writer.post(TRACK, VALID_TRACK, format="multipart")
    assert_error(response, 415, "unsupported_media_type")
    assert_nothing_written()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        # wrong types
        ({"to": 12015550123}, "to"),
        ({"provider_message_id": 12}, "provider_message_id"),
        ({"provider": 1}, "provider"),
        ({"feedback_requested": "yes"}, "feedback_requested"),
        ({"feedback_requested": 1}, "feedback_requested"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": "flow=login"}, "metadata"),
        ({"sent_at": 1700000000}, "sent_at"),
        ({"sender": {"name": "x"}}, "sender"),
        ({"purpose": None}, "purpose"),
        # unknown enum values
        ({"provider": "carrier-pigeon"}, "provider"),
        ({"channel": "pigeon"}, "channel"),
        ({"delivery_status": "lost"}, "delivery_status"),
        # invalid phone numbers and addresses
        ({"to": "+1 555"}, "to"),
        ({"to": "not a number"}, "to"),
        ({"to": ""}, "to"),
        ({"to": "   "}, "to"),
        ({"to": "+999123456789"}, "to"),
        # oversize fields
        ({"provider_message_id": "x" * 129}, "provider_message_id"),
        ({"sender": "x" * 257}, "sender"),
        ({"purpose": "p" * 65}, "purpose"),
        ({"provider_status": "s" * 65}, "provider_status"),
        ({"to": "x" * 1025, "channel": "chat"}, "to"),
        ({"metadata": {"blob": "x" * 5000}}, "metadata"),
        # what a database cannot store
        ({"provider_message_id": "SM\x00"}, "provider_message_id"),
        ({"metadata": {"k": "v\x00"}}, "metadata"),
        ({"metadata": {"k\x00": "v"}}, "metadata"),
        # bad values
        ({"purpose": "not a slug!"}, "purpose"),
        ({"provider_message_id": ""}, "provider_message_id"),
        ({"sent_at": "yesterday"}, "sent_at"),
        ({"sent_at": "2024-05-01T10:00:00"}, "sent_at"),
        ({"sent_at": "9999-12-31T23:59:59-05:00"}, "sent_at"),
        ({"sent_at": "0001-01-01T00:00:00+05:00"}, "sent_at"),
        ({"sent_at": "1990-01-01T00:00:00Z"}, "sent_at"),
    ],
)
def test_bad_track_input_is_400_naming_the_field_and_writes_nothing(writer, overrides, field):
    body = assert_error(writer.post(TRACK, {**VALID_TRACK, **overrides}), 400, "invalid")
    assert field in body["fields"], body
    assert body["detail"].startswith(f"{field}: ")
    assert all({"code", "detail"} == set(error) for error in body["fields"][field])
    assert_nothing_written()


def test_a_number_too_large_for_json_is_400(writer):
    raw = json.dumps(VALID_TRACK)[:-1] + ', "metadata": {"big": 1e400}}'
    body = assert_error(writer.post(TRACK, raw, content_type="application/json"), 400)
    assert "metadata" in body["fields"]
    assert_nothing_written()


def test_missing_required_fields_are_each_named(writer):
    body = assert_error(writer.post(TRACK, {}), 400, "invalid")
    assert set(body["fields"]) == {"provider", "provider_message_id", "to"}
    assert body["fields"]["to"][0]["code"] == "required"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"body": ""}, "body"),
        ({"body": 42}, "body"),
        ({"body": "x" * 1601}, "body"),
        ({"body": "code\x00"}, "body"),
        ({"to": "+1"}, "to"),
        ({"provider": "nope"}, "provider"),
        ({"channel": "fax"}, "channel"),
        ({"sender": 5}, "sender"),
    ],
)
def test_bad_send_input_is_400_and_sends_nothing(writer, overrides, field):
    body = assert_error(writer.post(SEND, {**VALID_SEND, **overrides}), 400, "invalid")
    assert field in body["fields"]
    assert_nothing_written()
    assert not IdempotencyRecord.objects.exists()


def test_a_rejected_body_is_not_echoed_in_the_error(writer):
    response = writer.post(SEND, {**VALID_SEND, "body": "code 987654" + "x" * 1600})
    assert b"987654" not in response.content


@pytest.mark.parametrize(
    "query",
    [
        "channel=fax",
        "feedback=maybe",
        "delivery_status=lost",
        "provider=nope",
        "sent_after=yesterday",
        "sent_before=9999-12-31T23:59:59-05:00",
        "sent_after=0001-01-01T00:00:00%2B05:00",
        "country=USA",
        "purpose=%00",
        "sender=a%00b",
    ],
)
@pytest.mark.parametrize("url", [f"{API}/messages/", f"{API}/stats/"])
def test_bad_filters_are_400(writer, url, query):
    body = assert_error(writer.get(f"{url}?{query}"), 400, "invalid")
    assert query.split("=")[0] in body["fields"]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        base64.b64encode(b"o=0&r=0&p=not-a-date").decode(),
        base64.b64encode(b"o=0&r=0&p=9999-12-31 23:59:59-05:00").decode(),
        base64.b64encode(b"p=\x00").decode(),
        # An offset PostgreSQL refuses ("time zone displacement out of range"); a bad id.
        base64.b64encode(b"o=0&p=2020-01-01T00:00:00+23:59|" + b"0" * 32).decode(),
        base64.b64encode(b"o=0&p=2020-01-01T00:00:00+00:00|not-an-id").decode(),
    ],
)
def test_a_forged_cursor_is_404(writer, cursor):
    assert_error(writer.get(f"{API}/messages/", {"cursor": cursor}), 404, "not_found")


def test_unknown_query_parameters_are_ignored(writer):
    assert writer.get(f"{API}/messages/?colour=blue").status_code == 200


@pytest.mark.parametrize(
    "path",
    ["nothing-here/", "nothing", "", "messages/a/b/", "messages/x/confirm/more/", "stats/x/"],
)
@pytest.mark.parametrize("method", ["get", "post", "put", "delete", "options"])
def test_unknown_url_under_the_api_is_a_json_404(writer, anonymous, path, method):
    for client in (writer, anonymous):
        body = assert_error(getattr(client, method)(f"{API}/{path}"), 404, "not_found")
        assert body["fields"] == {}


@pytest.mark.parametrize("path", ["messages/send", "messages", "messages/confirm"])
def test_a_post_without_the_trailing_slash_is_a_json_404_naming_the_right_url(writer, path):
    response = writer.post(f"{API}/{path}", VALID_SEND)
    body = assert_error(response, 404, "not_found")
    assert f"{API}/{path}/" in body["detail"]
    assert_nothing_written()


@pytest.mark.parametrize("url", [TRACK, SEND, f"{API}/messages/confirm/"])
def test_a_body_over_the_upload_limit_is_a_json_413(writer, settings, url):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    raw = json.dumps({**VALID_TRACK, "metadata": {"blob": "x" * 20_000}})
    response = writer.post(url, raw, content_type="application/json")
    assert_error(response, 413, "request_too_large")
    assert_nothing_written()


def test_a_20_mb_body_is_a_json_413(writer):
    raw = '{"metadata": "' + "x" * (20 * 1024 * 1024) + '"}'
    assert_error(writer.post(TRACK, raw, content_type="application/json"), 413)
    assert_nothing_written()


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01",  # a date alone
        "2024-01-01T00:00:00",  # no offset
        "2024-01-01 10:00",
    ],
)
@pytest.mark.parametrize("name", ["sent_after", "sent_before"])
@pytest.mark.parametrize("url", [f"{API}/messages/", f"{API}/stats/"])
def test_filter_times_without_an_offset_are_400_as_in_writes(writer, url, name, value):
    body = assert_error(writer.get(url, {name: value}), 400, "invalid")
    assert body["fields"][name][0]["code"] == "naive"


@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T00:00:00Z",
        "2024-01-01T02:00:00+02:00",
        "0351-04-19T19:33:24.4-19:08",  # an offset PostgreSQL refuses (over 16 hours)
        "2024-01-01T00:00:00+23:59",
    ],
)
def test_filter_times_with_an_offset_are_accepted(writer, value):
    assert writer.get(f"{API}/messages/", {"sent_after": value}).status_code == 200
    assert writer.get(f"{API}/stats/", {"sent_before": value}).status_code == 200


def test_a_refusal_quoting_the_recipient_is_logged_and_kept_with_the_number_masked(
    client_with, settings, caplog
):
    """Twilio's 21408 names the 'To' number in its message; the API logs the refusal."""
    from feedback_app.testing import FakeServer
    from feedback_app.testing.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, TwilioFake

    to = NUMBERS["GB"]
    fake = TwilioFake()
    fake.fail_next(
        status=400,
        code=21408,
        message=f"Permission to send an SMS has not been enabled for the 'To' number: {to}",
    )
    caplog.set_level(logging.DEBUG)
    with FakeServer(fake) as server:
        twilio = {"ACCOUNT_SID": ACCOUNT_SID, "AUTH_TOKEN": AUTH_TOKEN, "FROM": "+15005550006"}
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PROVIDERS": {
                **settings.FEEDBACK_APP["PROVIDERS"],
                "twilio": {**twilio, "BASE_URL": server.url},
            },
        }
        response = client_with("send_message").post(
            f"{API}/messages/send/", {"provider": "twilio", "to": to, "body": "code 123456"}
        )
    assert response.status_code == 502
    assert "21408" in response.json()["detail"]
    logged = [record.getMessage() for record in caplog.records]
    assert any("21408" in text and "+44******3456" in text for text in logged)
    assert not [text for text in logged if to in text or to[1:] in text]
    assert not Message.objects.exists()


@pytest.mark.parametrize(
    ("accept", "query"),
    [("text/html,application/xhtml+xml,*/*;q=0.8", ""), ("*/*", "?format=api")],
)
def test_the_api_answers_json_even_to_a_browser(writer, message, accept, query):
    """The schema documents JSON only: no browsable HTML page, whatever the host's renderers."""
    response = writer.get(f"{API}/messages/{message.pk}/{query}", HTTP_ACCEPT=accept)
    assert response["Content-Type"] == "application/json"
    json.loads(response.content)


def test_html_alone_is_not_acceptable(writer, message):
    response = writer.get(f"{API}/messages/{message.pk}/", HTTP_ACCEPT="text/html")
    assert_error(response, 406, "not_acceptable")
