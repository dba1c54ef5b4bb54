"""The message endpoints: list, detail, track and send, with their permissions."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message, MessageEvent
from feedback_app.providers import PermanentError, RetryableError, locmem
from feedback_app.states import Delivery, Feedback, Source
from feedback_app.tokens import confirmation_token, message_from_token

from ..factories import NUMBERS, make_message
from .conftest import API, json_client, make_user, token_client

pytestmark = pytest.mark.django_db

MESSAGES = f"{API}/messages/"


def detail_url(message_id: object) -> str:
    return f"{MESSAGES}{message_id}/"


# -- list --------------------------------------------------------------------------------------


def test_anonymous_list_is_401_with_the_token_challenge(anonymous, message):
    response = anonymous.get(MESSAGES)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["code"] == "not_authenticated"
    assert str(message.pk) not in response.content.decode()


def test_list_without_view_permission_is_403(client_with, message):
    response = client_with("confirm_message", "send_message").get(MESSAGES)
    assert response.status_code == 403
    assert response.json()["code"] == "permission_denied"
    assert str(message.pk) not in response.content.decode()


def test_list_is_newest_first(client_with):
    now = timezone.now()
    old = make_message(sent_at=now - timedelta(hours=2))
    new = make_message(sent_at=now - timedelta(minutes=1))
    middle = make_message(sent_at=now - timedelta(hours=1))
    response = client_with("view_message").get(MESSAGES)
    assert response.status_code == 200
    ids = [row["id"] for row in response.json()["results"]]
    assert ids == [str(new.pk), str(middle.pk), str(old.pk)]


def test_cursor_pagination_visits_every_message_once_even_with_equal_times(client_with):
    sent = timezone.now() - timedelta(minutes=5)
    expected = {str(make_message(sent_at=sent).pk) for _ in range(7)}
    expected |= {str(make_message(sent_at=sent - timedelta(seconds=i)).pk) for i in range(1, 6)}
    client = client_with("view_message")
    seen: list[str] = []
    url = f"{MESSAGES}?page_size=3"
    pages = 0
    while url:
        body = client.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url = body["next"]
        pages += 1
    assert sorted(seen) == sorted(expected)
    assert pages == 4


def test_more_than_a_thousand_messages_sent_at_one_instant_page_through_both_ways(client_with):
    """DRF's own cursor skipped ties by an offset capped at 1,000: its next link repeated."""
    sent = timezone.now() - timedelta(minutes=5)
    for _ in range(1200):
        make_message(sent_at=sent)
    client = client_with("view_message")
    pages: list[list[str]] = []
    url = f"{MESSAGES}?page_size=500"
    while url and len(pages) < 10:
        body = client.get(url).json()
        pages.append([row["id"] for row in body["results"]])
        url = body["next"]
    assert [len(page) for page in pages] == [500, 500, 200]
    assert len({pk for page in pages for pk in page}) == 1200
    # And back: each previous link gives the page before, in the same order.
    back = client.get(body["previous"]).json()
    assert [row["id"] for row in back["results"]] == pages[1]
    back = client.get(back["previous"]).json()
    assert [row["id"] for row in back["results"]] == pages[0]
    assert back["previous"] is None


def test_page_size_up_to_the_maximum_is_honoured(client_with):
    for _ in range(3):
        make_message()
    client = client_with("view_message")
    body = client.get(MESSAGES, {"page_size": 500}).json()
    assert len(body["results"]) == 3
    assert body["next"] is None and body["previous"] is None
    assert len(client.get(MESSAGES, {"page_size": 2}).json()["results"]) == 2


@pytest.mark.parametrize("page_size", ["0", "501", "100000", "-1", "ten", "2.5", "9" * 5000])
def test_page_size_out_of_range_is_400_not_silently_replaced(client_with, page_size):
    response = client_with("view_message").get(MESSAGES, {"page_size": page_size})
    assert response.status_code == 400
    assert response.json()["fields"]["page_size"][0]["code"] == "invalid"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("provider=silent", {"silent"}),
        ("purpose=login", {"login"}),
        ("channel=whatsapp", {"whatsapp"}),
        ("country=GB", {"gb"}),
        ("feedback=confirmed", {"confirmed"}),
        ("delivery_status=delivered", {"delivered"}),
        ("sender=ACME", {"acme"}),
    ],
)
def test_each_filter_selects_its_messages(client_with, query, expected):
    make_message()  # matches none of the filters
    tagged = {
        "silent": make_message(provider="silent"),
        "login": make_message(purpose="login"),
        "whatsapp": make_message(channel="whatsapp"),
        "gb": make_message(to=NUMBERS["GB"]),
        "confirmed": make_message(),
        "delivered": make_message(delivery_status=Delivery.DELIVERED),
        "acme": make_message(sender="ACME"),
    }
    services.confirm(tagged["confirmed"])
    body = client_with("view_message").get(f"{MESSAGES}?{query}").json()
    assert {row["id"] for row in body["results"]} == {str(tagged[name].pk) for name in expected}


def test_sent_after_is_inclusive_and_sent_before_exclusive(client_with):
    start = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    before = make_message(sent_at=start - timedelta(seconds=1))
    at_start = make_message(sent_at=start)
    inside = make_message(sent_at=start + timedelta(hours=1))
    at_end = make_message(sent_at=start + timedelta(hours=2))
    end = start + timedelta(hours=2)
    query = {"sent_after": start.isoformat(), "sent_before": end.isoformat()}
    body = client_with("view_message").get(MESSAGES, query).json()
    ids = {row["id"] for row in body["results"]}
    assert ids == {str(at_start.pk), str(inside.pk)}
    assert str(before.pk) not in ids and str(at_end.pk) not in ids


def test_list_shows_the_masked_recipient_never_the_number_or_its_hash(client_with):
    message = make_message(to=NUMBERS["DE"])
    text = client_with("view_message").get(MESSAGES).content.decode()
    assert message.recipient_masked in text
    assert NUMBERS["DE"] not in text
    assert message.recipient_hash not in text


# -- detail ------------------------------------------------------------------------------------


def test_detail_has_the_event_history_oldest_first(client_with, message):
    services.record_delivery(message, Delivery.SENT)
    services.confirm(message)
    body = client_with("view_message").get(detail_url(message.pk)).json()
    assert body["id"] == str(message.pk)
    assert body["feedback"] == Feedback.CONFIRMED
    assert [(e["kind"], e["to_value"]) for e in body["events"]] == [
        ("delivery", "queued"),
        ("delivery", "sent"),
        ("feedback", "confirmed"),
    ]
    assert "id" not in body["events"][0]


@pytest.mark.parametrize("missing", [str(uuid.uuid4()), "not-a-uuid", "1", "%20"])
def test_detail_of_an_unknown_or_malformed_id_is_a_json_404(client_with, missing):
    response = client_with("view_message").get(detail_url(missing))
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_without_permission_existing_and_unknown_ids_get_the_same_answer(client_with, message):
    client = client_with("confirm_message")
    existing = client.get(detail_url(message.pk))
    unknown = client.get(detail_url(uuid.uuid4()))
    assert existing.status_code == unknown.status_code == 403
    assert existing.json() == unknown.json()


def test_anonymous_detail_is_401(anonymous, message):
    assert anonymous.get(detail_url(message.pk)).status_code == 401


# -- track -------------------------------------------------------------------------------------


def test_track_records_a_message_sent_by_the_caller(client_with):
    sent_at = timezone.now() - timedelta(minutes=1)
    response = client_with("add_message").post(
        MESSAGES,
        {
            "provider": "locmem",
            "provider_message_id": "SM123",
            "to": NUMBERS["BR"],
            "purpose": "login",
            "channel": "whatsapp",
            "sender": "+15005550006",
            "sent_at": sent_at.isoformat(),
            "feedback_requested": False,
            "metadata": {"flow": "signup"},
            "delivery_status": "sent",
            "provider_status": "accepted",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    message = Message.objects.get(pk=body["id"])
    assert (message.provider, message.provider_message_id, message.purpose) == (
        "locmem",
        "SM123",
        "login",
    )
    assert message.country == "BR" and message.feedback_requested is False
    assert message.sent_at == sent_at and message.metadata == {"flow": "signup"}
    assert body["recipient"] == message.recipient_masked
    assert "to" not in body
    event = MessageEvent.objects.get(message=message)
    assert event.source == Source.API


def test_track_defaults_match_the_python_api(client_with):
    response = client_with("add_message").post(
        MESSAGES, {"provider": "locmem", "provider_message_id": "X1", "to": NUMBERS["US"]}
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["purpose"], body["channel"], body["delivery_status"]) == ("otp", "sms", "queued")
    assert body["feedback_requested"] is True and body["feedback"] == "pending"


def test_tracking_a_provider_id_twice_is_400_naming_the_field(client_with, message):
    again = {"provider": "locmem", "provider_message_id": message.provider_message_id}
    response = client_with("add_message").post(MESSAGES, {**again, "to": NUMBERS["GB"]})
    assert response.status_code == 400
    assert "already tracked" in response.json()["fields"]["provider_message_id"][0]["detail"]
    assert Message.objects.count() == 1


@pytest.mark.parametrize("codenames", [(), ("view_message",), ("send_message",)])
def test_track_without_add_permission_is_403_and_writes_nothing(client_with, codenames):
    response = client_with(*codenames).post(
        MESSAGES, {"provider": "locmem", "provider_message_id": "X", "to": NUMBERS["US"]}
    )
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_session_authentication_works_and_requires_the_csrf_token(db):
    client = json_client(enforce_csrf_checks=True)
    client.force_login(make_user("add_message"))
    data = {"provider": "locmem", "provider_message_id": "S1", "to": NUMBERS["US"]}
    refused = client.post(MESSAGES, data, format="json")
    assert refused.status_code == 403
    assert "CSRF" in refused.json()["detail"]
    secret = "a" * 32  # what a browser holds in the csrftoken cookie and sends back
    client.cookies["csrftoken"] = secret
    accepted = client.post(MESSAGES, data, format="json", HTTP_X_CSRFTOKEN=secret)
    assert accepted.status_code == 201


# -- send --------------------------------------------------------------------------------------


def test_send_passes_the_body_to_the_provider_and_never_stores_or_echoes_it(client_with):
    body = "Your code is 739201"
    response = client_with("send_message").post(
        f"{MESSAGES}send/",
        {"provider": "locmem", "to": NUMBERS["IN"], "body": body, "metadata": {"flow": "login"}},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert locmem.outbox[-1]["body"] == body
    assert locmem.outbox[-1]["to"] == NUMBERS["IN"]
    text = response.content.decode()
    assert "739201" not in text and NUMBERS["IN"] not in text
    message = Message.objects.get(pk=response.json()["id"])
    assert str(message.pk) == locmem.outbox[-1]["message_id"]
    stored = str(list(Message.objects.values())) + str(list(MessageEvent.objects.values()))
    assert "739201" not in stored and NUMBERS["IN"] not in stored
    assert MessageEvent.objects.get(message=message).source == Source.API


@pytest.mark.parametrize("codenames", [(), ("add_message", "view_message", "confirm_message")])
def test_send_without_send_permission_is_403_and_sends_nothing(client_with, codenames):
    response = client_with(*codenames).post(
        f"{MESSAGES}send/", {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1"}
    )
    assert response.status_code == 403
    assert not locmem.outbox
    assert not Message.objects.exists()


def test_send_when_the_provider_is_unavailable_is_503_and_writes_nothing(client_with):
    locmem.fail_next(1, RetryableError("throttled", code=429))
    response = client_with("send_message").post(
        f"{MESSAGES}send/", {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1"}
    )
    assert response.status_code == 503
    assert response.json() == {
        "code": "provider_unavailable",
        "detail": response.json()["detail"],
        "fields": {},
    }
    assert not Message.objects.exists()


def test_send_refused_by_the_provider_is_502_with_its_code_not_its_message(client_with):
    locmem.fail_next(1, PermanentError("account AC123 suspended", code=21610))
    response = client_with("send_message").post(
        f"{MESSAGES}send/", {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1"}
    )
    assert response.status_code == 502
    body = response.json()
    assert body["code"] == "provider_rejected"
    assert "21610" in body["detail"] and "AC123" not in body["detail"]
    assert not Message.objects.exists()


def test_send_to_an_invalid_number_is_400_and_calls_no_provider(client_with):
    response = client_with("send_message").post(
        f"{MESSAGES}send/", {"provider": "locmem", "to": "+1 555", "body": "code 1"}
    )
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["to"]
    assert not locmem.outbox


def test_send_through_an_unknown_provider_is_400(client_with):
    response = client_with("send_message").post(
        f"{MESSAGES}send/", {"provider": "carrier-pigeon", "to": NUMBERS["US"], "body": "code 1"}
    )
    assert response.status_code == 400
    assert response.json()["fields"]["provider"][0]["code"] == "invalid_choice"
    assert not locmem.outbox


def test_superuser_token_can_do_everything(admin, message):
    assert admin.get(MESSAGES).status_code == 200
    assert admin.get(detail_url(message.pk)).status_code == 200
    assert admin.post(f"{detail_url(message.pk)}confirm/").status_code == 200


def test_get_on_a_post_only_endpoint_is_a_json_405(client_with):
    response = client_with("send_message").get(f"{MESSAGES}send/")
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


def test_user_for_a_token_client_is_the_actor(db, message):
    user = make_user("confirm_message")
    token_client(user).post(f"{detail_url(message.pk)}confirm/")
    event = MessageEvent.objects.get(message=message, kind="feedback")
    assert (event.actor, event.source) == (user.username, Source.API)


# -- chosen ids and confirmation tokens --------------------------------------------------------

SEND = f"{MESSAGES}send/"
TRACKED = {"provider": "locmem", "provider_message_id": "SM-chosen", "to": NUMBERS["US"]}


SENT = {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1"}


@pytest.mark.parametrize(("url", "data"), [(MESSAGES, TRACKED), (SEND, SENT)])
def test_track_and_send_answer_with_the_confirmation_token(client_with, url, data):
    response = client_with("add_message", "send_message").post(url, data)
    assert response.status_code == 201
    body = response.json()
    message = Message.objects.get(pk=body["id"])
    assert body["confirmation_token"] == confirmation_token(message)
    assert message_from_token(body["confirmation_token"]) == message


@pytest.mark.parametrize("url", [MESSAGES, SEND])
def test_track_and_send_take_a_chosen_message_id(client_with, url):
    chosen = uuid.uuid4()
    data = {**(TRACKED if url == MESSAGES else SENT), "message_id": str(chosen)}
    response = client_with("add_message", "send_message").post(url, data)
    assert response.status_code == 201, response.json()
    assert response.json()["id"] == str(chosen)
    assert response.json()["confirmation_token"] == confirmation_token(chosen)
    assert Message.objects.get().pk == chosen


@pytest.mark.parametrize("url", [MESSAGES, SEND])
def test_a_message_id_in_use_is_400_on_that_field_and_sends_nothing(client_with, message, url):
    data = {**(TRACKED if url == MESSAGES else SENT), "message_id": str(message.pk)}
    response = client_with("add_message", "send_message").post(url, data)
    assert response.status_code == 400
    assert list(response.json()["fields"]) == ["message_id"]
    assert response.json()["fields"]["message_id"][0]["code"] == "duplicate"
    assert Message.objects.count() == 1
    assert not locmem.outbox


@pytest.mark.parametrize("message_id", ["not-a-uuid", 12345, None, ""])
def test_a_malformed_message_id_is_400(client_with, message_id):
    response = client_with("add_message").post(MESSAGES, {**TRACKED, "message_id": message_id})
    assert response.status_code == 400
    assert "message_id" in response.json()["fields"]
    assert not Message.objects.exists()


def test_link_placeholder_puts_the_confirmation_link_in_the_body(client_with, client):
    response = client_with("send_message").post(
        SEND, {"provider": "locmem", "to": NUMBERS["US"], "body": "Code 4821, or tap {link}"}
    )
    assert response.status_code == 201, response.json()
    token = response.json()["confirmation_token"]
    sent = locmem.outbox[-1]["body"]
    assert sent == f"Code 4821, or tap http://testserver/feedback/c/{token}/"
    # The link in the body confirms exactly the message the answer names.
    assert client.get(f"/feedback/c/{token}/").status_code == 302
    assert Message.objects.get(pk=response.json()["id"]).feedback == Feedback.CONFIRMED


def test_link_placeholder_uses_public_url_and_the_chosen_id(client_with, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com/"}
    chosen = uuid.uuid4()
    response = client_with("send_message").post(
        SEND,
        {"provider": "locmem", "to": NUMBERS["US"], "body": "{link}", "message_id": str(chosen)},
    )
    assert response.json()["id"] == str(chosen)
    token = confirmation_token(chosen)
    assert locmem.outbox[-1]["body"] == f"https://otp.example.com/feedback/c/{token}/"
    assert locmem.outbox[-1]["message_id"] == str(chosen)


def test_token_placeholder_puts_the_bare_token_in_the_body(client_with):
    response = client_with("send_message").post(
        SEND,
        {"provider": "locmem", "to": NUMBERS["US"], "body": "https://app.example/v/{token}"},
    )
    token = response.json()["confirmation_token"]
    assert locmem.outbox[-1]["body"] == f"https://app.example/v/{token}"


def test_the_body_with_its_link_is_never_stored(client_with):
    response = client_with("send_message").post(
        SEND, {"provider": "locmem", "to": NUMBERS["US"], "body": "Code 664411 {link}"}
    )
    stored = str(list(Message.objects.values())) + str(list(MessageEvent.objects.values()))
    assert "664411" not in stored and "/feedback/c/" not in stored
    assert "664411" not in response.content.decode()


def test_a_body_too_long_once_the_link_is_in_is_400_and_sends_nothing(client_with):
    body = "x" * 1590 + "{link}"
    response = client_with("send_message").post(
        SEND, {"provider": "locmem", "to": NUMBERS["US"], "body": body}
    )
    assert response.status_code == 400
    assert response.json()["fields"]["body"][0]["code"] == "max_length"
    assert not locmem.outbox and not Message.objects.exists()


# -- channels the provider does not send -------------------------------------------------------


@pytest.fixture
def twilio_configured(settings):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "twilio": {"ACCOUNT_SID": "AC" + "0" * 32, "AUTH_TOKEN": "x" * 32},
        },
    }


def test_a_channel_the_provider_does_not_send_is_400_on_channel(client_with, twilio_configured):
    response = client_with("send_message").post(
        SEND, {"provider": "twilio", "to": NUMBERS["US"], "body": "code 1", "channel": "voice"}
    )
    assert response.status_code == 400, response.json()
    assert list(response.json()["fields"]) == ["channel"]
    assert response.json()["fields"]["channel"][0]["code"] == "unsupported_channel"
    assert not Message.objects.exists()


def test_a_provider_that_names_no_channels_takes_any(client_with):
    response = client_with("send_message").post(
        SEND, {"provider": "locmem", "to": NUMBERS["US"], "body": "code 1", "channel": "voice"}
    )
    assert response.status_code == 201
    assert locmem.outbox[-1]["channel"] == "voice"


# -- anonymous callers and logs ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "data"),
    [(MESSAGES, TRACKED), (SEND, SENT)],
)
def test_anonymous_track_and_send_are_401_and_write_nothing(anonymous, url, data):
    response = anonymous.post(url, data)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Token"
    assert not Message.objects.exists() and not locmem.outbox


@pytest.fixture
def every_log_line():
    """Every record any logger emits, at DEBUG, SQL included, formatted with its traceback."""
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Keep(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.root.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved = [(logger, logger.level, logger.disabled) for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
        logger.disabled = False
        logger.addHandler(handler)
    connection.force_debug_cursor = True
    try:
        yield lines
    finally:
        connection.force_debug_cursor = False
        for logger, level, disabled in saved:
            logger.removeHandler(handler)
            logger.setLevel(level)
            logger.disabled = disabled


def test_the_send_body_and_number_never_reach_a_log(client_with, every_log_line):
    client = client_with("send_message")
    data = {"provider": "locmem", "to": NUMBERS["IN"], "body": "Your code is 903417 {link}"}
    assert client.post(SEND, data).status_code == 201
    locmem.fail_next(1, RetryableError("busy", code=503))
    assert client.post(SEND, data).status_code == 503
    locmem.fail_next(1, PermanentError("refused", code=21610))
    assert client.post(SEND, data).status_code == 502
    assert client.post(SEND, {**data, "channel": "fax"}).status_code == 400
    assert client.post(SEND, {**data, "body": data["body"] + "x" * 1600}).status_code == 400
    text = "\n".join(every_log_line)
    assert "INSERT" in text  # the capture saw the SQL, so it would have seen a body in it
    assert "903417" not in text
    assert NUMBERS["IN"] not in text and NUMBERS["IN"][1:] not in text


# -- verifications -----------------------------------------------------------------------------


def test_send_and_track_with_one_verification_key_share_the_verification(client_with):
    client = client_with("send_message", "add_message")
    key = "login-attempt-81"
    sent = client.post(
        f"{MESSAGES}send/",
        {"provider": "locmem", "to": NUMBERS["US"], "body": "1234", "verification": key},
        format="json",
    )
    tracked = client.post(
        MESSAGES,
        {
            "provider": "locmem",
            "provider_message_id": "RESEND1",
            "to": NUMBERS["US"],
            "verification": key,
        },
        format="json",
    )
    assert sent.status_code == tracked.status_code == 201, (sent.json(), tracked.json())
    first, resend = sent.json(), tracked.json()
    assert first["verification_id"] == resend["verification_id"] is not None
    assert (first["resend"], resend["resend"]) == (False, True)
    # The key itself is never echoed.
    assert key not in sent.content.decode() + tracked.content.decode()
    assert "verification" not in first


def test_a_message_without_a_key_shows_no_verification(client_with):
    response = client_with("add_message").post(
        MESSAGES, {"provider": "locmem", "provider_message_id": "X1", "to": NUMBERS["US"]}
    )
    assert response.json()["verification_id"] is None


def test_a_verification_key_reused_for_another_recipient_is_400_and_sends_nothing(client_with):
    client = client_with("send_message")
    data = {"provider": "locmem", "body": "1234", "verification": "k"}
    assert client.post(f"{MESSAGES}send/", {**data, "to": NUMBERS["US"]}).status_code == 201
    sent = len(locmem.outbox)
    response = client.post(f"{MESSAGES}send/", {**data, "to": NUMBERS["GB"]})
    assert response.status_code == 400
    assert response.json()["fields"]["verification"][0]["code"] == "verification_mismatch"
    assert len(locmem.outbox) == sent and Message.objects.count() == 1


@pytest.mark.parametrize(("key", "code"), [("", "blank"), ("x" * 256, "max_length")])
def test_a_bad_verification_key_is_400(client_with, key, code):
    response = client_with("add_message").post(
        MESSAGES,
        {
            "provider": "locmem",
            "provider_message_id": "X",
            "to": NUMBERS["US"],
            "verification": key,
        },
    )
    assert response.status_code == 400
    assert response.json()["fields"]["verification"][0]["code"] == code
    assert not Message.objects.exists()
