"""The telesign backend through the real telesign SDKs, against TelesignFake over HTTP: what is
sent, the status mapping, errors, the callback webhook and the demo carrier."""

from __future__ import annotations

import json
import logging
import socket
import time
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from feedback_app import polling, services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.telesign import (
    DEFAULT_TIMEOUT,
    STATUSES,
    TelesignProvider,
    delivery_status,
)
from feedback_app.states import CallState, Channel, Delivery, EventKind, Feedback, Source
from feedback_app.testing import FakeServer
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.telesign_fake import (
    API_KEY,
    CUSTOMER_ID,
    CarrierTelesignFake,
    TelesignFake,
)

pytestmark = pytest.mark.django_db

TO = "+12015550123"
BODY = "Your verification code is 482913"
UNKNOWN_REFERENCE = "F" * 32
WEBHOOK = "/feedback/webhooks/telesign/"


@pytest.fixture(autouse=True)
def telesign_environment(monkeypatch):
    """No credentials from the machine running the tests."""
    monkeypatch.delenv("TELESIGN_CUSTOMER_ID", raising=False)
    monkeypatch.delenv("TELESIGN_API_KEY", raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> TelesignFake:
    return TelesignFake()


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> TelesignFake:
    shared_fake.reset()
    return shared_fake


def configure(settings, key: str = "telesign", **config: Any) -> TelesignProvider:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: config},
    }
    return get_provider(key)


@pytest.fixture
def telesign(settings, server, fake) -> TelesignProvider:
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://app.example.com"}
    return configure(settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=server.url)


def send(provider: TelesignProvider, **options: Any):
    return provider.send(
        to=TO, body=BODY, sender=None, channel=Channel.SMS, message_id="m", **options
    )


# -- sending -----------------------------------------------------------------------------------


def test_send_is_an_sms_verify_transaction_carrying_our_text_and_our_callback(telesign, fake):
    result = send(telesign)

    [request] = fake.requests
    assert (request.method, request.resource) == ("POST", "/v1/verify/sms")
    # Signed with Digest (the SDK's default): the fake checked the HMAC for our customer id.
    assert request.customer_id == CUSTOMER_ID
    transaction = fake.transactions[result.provider_message_id]
    assert transaction.phone_number == "12015550123"  # digits only, as Telesign takes them
    assert transaction.template == BODY  # our text, so the code the user reads is ours
    assert transaction.callback_url == "https://app.example.com" + WEBHOOK
    assert transaction.sender_id is None
    assert (result.delivery_status, result.provider_status) == (Delivery.QUEUED, "290")
    assert len(result.provider_message_id) == 32


def test_the_callback_url_setting_wins_over_public_url(settings, telesign, fake):
    provider = configure(
        settings,
        CUSTOMER_ID=CUSTOMER_ID,
        API_KEY=API_KEY,
        BASE_URL=telesign.config["BASE_URL"],
        CALLBACK_URL="https://hooks.example.com/telesign",
    )
    result = send(provider)
    assert fake.transactions[result.provider_message_id].callback_url == (
        "https://hooks.example.com/telesign"
    )


def test_without_public_url_or_setting_no_callback_url_is_sent(settings, server, fake):
    provider = configure(settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=server.url)
    result = send(provider)
    assert fake.transactions[result.provider_message_id].callback_url is None
    assert "callback_url" not in fake.requests[0].form


def test_another_key_with_the_telesign_backend_gets_its_own_webhook_url(settings, telesign, fake):
    provider = configure(
        settings,
        key="telesign_eu",
        BACKEND="feedback_app.providers.telesign.TelesignProvider",
        CUSTOMER_ID=CUSTOMER_ID,
        API_KEY=API_KEY,
        BASE_URL=telesign.config["BASE_URL"],
    )
    result = send(provider)
    assert fake.transactions[result.provider_message_id].callback_url == (
        "https://app.example.com/feedback/webhooks/telesign/telesign_eu/"
    )


def test_the_sender_argument_wins_over_the_sender_id_setting(settings, telesign, fake):
    provider = configure(settings, **{**telesign.config, "SENDER_ID": "ACME"})
    from_settings = send(provider)
    from_argument = provider.send(
        to=TO, body=BODY, sender="ACMEBANK", channel=Channel.SMS, message_id="m"
    )
    assert fake.transactions[from_settings.provider_message_id].sender_id == "ACME"
    assert from_settings.sender == "ACME"
    assert fake.transactions[from_argument.provider_message_id].sender_id == "ACMEBANK"


def test_options_pass_through_to_the_transaction(telesign, fake):
    result = send(telesign, verify_code="482913", ucid="ATCK", is_primary="false")
    transaction = fake.transactions[result.provider_message_id]
    assert transaction.verify_code == "482913"
    assert transaction.extra == {"ucid": "ATCK", "is_primary": "false"}


def test_an_unknown_option_is_a_programming_error(telesign, fake):
    with pytest.raises(TypeError, match="message_type"):
        send(telesign, message_type="OTP")
    assert fake.requests == []


def test_a_channel_sms_verify_does_not_serve_is_refused_before_any_request(telesign, fake):
    with pytest.raises(PermanentError) as raised:
        telesign.send(to=TO, body=BODY, sender=None, channel=Channel.WHATSAPP, message_id="m")
    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


def test_a_verify_code_telesign_refuses_is_permanent_with_its_code(telesign, fake):
    with pytest.raises(PermanentError) as raised:
        send(telesign, verify_code="12")
    assert raised.value.code == "-10001"


def test_the_body_and_the_number_are_stored_nowhere(telesign, fake):
    message = services.send(provider="telesign", to=TO, body=BODY)
    row = Message.objects.filter(pk=message.pk).values().get()
    assert BODY not in repr(row)
    assert TO not in repr(row) and TO[1:] not in repr(row)
    assert message.metadata == {}


def test_a_base_url_with_a_path_reaches_the_fake_under_it(settings, fake):
    """The demo serves every fake on one port, Telesign's under /telesign/."""

    def under_prefix(environ, start_response):
        if not environ["PATH_INFO"].startswith("/telesign/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not here"]
        return fake(environ, start_response)

    with FakeServer(under_prefix) as prefixed:
        provider = configure(
            settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=prefixed.url + "/telesign"
        )
        result = send(provider)
        update = provider.fetch_status(_message(result.provider_message_id))

    assert [r.path for r in fake.requests] == [
        "/telesign/v1/verify/sms",
        f"/telesign/v1/verify/{result.provider_message_id}",
    ]
    assert update.provider_status == "290"


# -- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("290", Delivery.QUEUED),
        ("292", Delivery.QUEUED),
        ("203", Delivery.SENT),
        ("200", Delivery.DELIVERED),
        ("250", Delivery.UNKNOWN),
        ("251", Delivery.UNKNOWN),
        ("210", Delivery.UNDELIVERED),
        ("221", Delivery.UNDELIVERED),
        ("514", Delivery.UNDELIVERED),
        ("230", Delivery.REJECTED),
        ("233", Delivery.REJECTED),
        ("515", Delivery.REJECTED),
        ("500", Delivery.FAILED),
        ("507", Delivery.FAILED),
    ],
)
def test_telesign_status_codes_map_to_the_delivery_vocabulary(code, status):
    assert delivery_status(code) == status
    assert delivery_status(int(code)) == status


@pytest.mark.parametrize("code", ["295", "599", "1900", "", None])
def test_codes_that_say_nothing_about_the_message_are_not_applied(code):
    assert delivery_status(code) is None


def test_every_mapped_status_is_a_delivery_status():
    assert set(STATUSES.values()) <= set(Delivery.values)
    assert all(code.isdigit() and len(code) == 3 for code in STATUSES)


def _message(reference_id: str) -> Message:
    return Message(provider="telesign", provider_message_id=reference_id)


def test_fetch_status_reads_the_transaction_and_maps_its_code(telesign, fake):
    result = send(telesign)
    fake.set_status(result.provider_message_id, 200)

    update = telesign.fetch_status(_message(result.provider_message_id))

    assert (update.delivery_status, update.provider_status) == (Delivery.DELIVERED, "200")
    assert update.at is not None and update.at.tzinfo is not None
    assert update.detail == {"description": "Delivered to handset"}
    assert fake.requests[-1].resource == f"/v1/verify/{result.provider_message_id}"


def test_fetch_status_of_a_code_not_applied_is_none(telesign, fake):
    result = send(telesign)
    fake.set_status(result.provider_message_id, 295)
    assert telesign.fetch_status(_message(result.provider_message_id)) is None


def test_fetch_status_of_an_unknown_transaction_is_permanent_not_found(telesign, fake):
    with pytest.raises(PermanentError) as raised:
        telesign.fetch_status(_message(UNKNOWN_REFERENCE))
    assert raised.value.code == "-10001"


def test_a_message_left_at_the_gateway_is_synced(telesign, fake):
    message = services.send(provider="telesign", to=TO, body=BODY)
    reference_id = message.provider_message_id
    fake.set_status(reference_id, 203)
    assert services.record_delivery(message, Delivery.SENT, provider_status="203")
    fake.set_status(reference_id, 200)
    Message.objects.filter(pk=message.pk).update(sent_at=timezone.now() - timedelta(hours=2))

    polling.sync_statuses()

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "200")


# -- reporting ---------------------------------------------------------------------------------


def test_a_confirmation_sends_one_completion(telesign, fake, django_capture_on_commit_callbacks):
    message = services.send(provider="telesign", to=TO, body=BODY)

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    assert fake.completions == [message.provider_message_id]
    [request] = fake.requests_to("PUT", "/v1/verify/completion/")
    assert request.resource == f"/v1/verify/completion/{message.provider_message_id}"
    assert request.form == {}
    [call] = ProviderCall.objects.filter(message=message)
    assert call.state == CallState.SUCCEEDED


def test_failure_and_expiry_send_telesign_nothing(
    telesign, fake, django_capture_on_commit_callbacks
):
    message = services.send(provider="telesign", to=TO, body=BODY)
    with django_capture_on_commit_callbacks(execute=True):
        services.fail(message)
    message.refresh_from_db()
    assert message.feedback == Feedback.FAILED
    assert fake.completions == []
    assert fake.requests_to("PUT", "/v1/verify/completion/") == []


@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_only_completions_are_ever_sent(telesign, fake, outcome):
    with pytest.raises(PermanentError) as raised:
        telesign.report_feedback(
            provider_message_id=UNKNOWN_REFERENCE, outcome=outcome, idempotency_key="k"
        )
    assert raised.value.code == "unsupported_outcome"
    assert fake.requests == []


def test_a_superseded_message_is_reported_nothing(telesign):
    message = Message(provider="telesign", delivery_status=Delivery.DELIVERED)
    assert telesign.superseded_outcome(message) is None


def test_a_completion_for_an_unknown_transaction_is_permanent(telesign, fake):
    with pytest.raises(PermanentError) as raised:
        telesign.report_feedback(
            provider_message_id=UNKNOWN_REFERENCE, outcome="confirmed", idempotency_key="k"
        )
    assert raised.value.code == "-10001"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "side"),
    [
        (429, -40007, RetryableError),  # rate limit exceeded
        (503, -90001, RetryableError),  # system unavailable
        (500, -90001, RetryableError),
        (429, -40008, PermanentError),  # transaction hard cap: a person lifts it
        (400, -10001, PermanentError),
        (401, -30000, PermanentError),
        (404, -10001, PermanentError),
    ],
)
def test_each_telesign_error_lands_on_its_side_with_telesigns_code(
    telesign, fake, status, code, side
):
    fake.fail_next(status=status, code=code, description="Refused for +12025550143")
    with pytest.raises(side) as raised:
        send(telesign)
    assert type(raised.value) is side
    assert raised.value.code == str(code)
    assert "+12025550143" not in str(raised.value)


def test_an_answer_that_is_not_telesigns_json_keeps_the_http_status_as_code(settings, fake):
    def gateway(environ, start_response):
        start_response("502 Bad Gateway", [("Content-Type", "text/html")])
        return [b"<html>bad gateway</html>"]

    with FakeServer(gateway) as proxy:
        provider = configure(settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=proxy.url)
        with pytest.raises(RetryableError) as raised:
            send(provider)
    assert raised.value.code == "http_502"


def test_a_wrong_api_key_is_permanent_with_telesigns_invalid_signature(settings, server, fake):
    provider = configure(
        settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY="d3Jvbmcta2V5", BASE_URL=server.url
    )
    with pytest.raises(PermanentError) as raised:
        send(provider)
    assert raised.value.code == "-30006"
    assert fake.transactions == {}


def test_a_timeout_is_retryable(settings, server, fake):
    provider = configure(
        settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=server.url, TIMEOUT=0.2
    )
    fake.latency = 1.0
    started = time.monotonic()
    with pytest.raises(RetryableError) as raised:
        send(provider)
    assert time.monotonic() - started < 1.0
    assert raised.value.code == "ReadTimeout"


def test_a_refused_connection_is_retryable(settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    provider = configure(
        settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=f"http://127.0.0.1:{port}"
    )
    with pytest.raises(RetryableError) as raised:
        send(provider)
    assert raised.value.code == "ConnectionError"


def test_the_client_is_built_once_with_the_timeout_and_base_url(settings, telesign, fake):
    assert telesign.client is telesign.client
    assert telesign.client.timeout == DEFAULT_TIMEOUT
    assert telesign.client.api_host == telesign.config["BASE_URL"]
    provider = configure(settings, **{**telesign.config, "TIMEOUT": 3})
    assert provider.client.timeout == 3


def test_credentials_come_from_telesigns_environment_variables(settings, server, fake, monkeypatch):
    monkeypatch.setenv("TELESIGN_CUSTOMER_ID", CUSTOMER_ID)
    monkeypatch.setenv("TELESIGN_API_KEY", API_KEY)
    provider = configure(settings, BASE_URL=server.url)
    result = send(provider)
    assert result.provider_message_id in fake.transactions
    assert TelesignProvider.check_config("telesign", {"CALLBACK_URL": "https://x.example"}) == []


def test_without_credentials_nothing_is_sent(settings, server, fake):
    provider = configure(settings, BASE_URL=server.url)
    with pytest.raises(PermanentError) as raised:
        send(provider)
    assert raised.value.code == "missing_credentials"
    assert fake.requests == []


def test_check_config_warns_when_no_callback_url_is_given(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": None}
    config = {"CUSTOMER_ID": CUSTOMER_ID, "API_KEY": API_KEY}
    assert [m.id for m in TelesignProvider.check_config("telesign", config)] == [
        "feedback_app.W150"
    ]
    config["CALLBACK_URL"] = "https://hooks.example.com/telesign"
    assert TelesignProvider.check_config("telesign", config) == []


def test_neither_credentials_nor_the_body_are_logged(telesign, fake, caplog):
    caplog.set_level(logging.DEBUG)
    send(telesign)
    assert API_KEY not in caplog.text
    assert BODY not in caplog.text


# -- the callback webhook ----------------------------------------------------------------------


def _post(client, body: bytes, headers: dict[str, str], path: str = WEBHOOK):
    return client.post(path, data=body, content_type="application/json", headers=headers)


def test_a_signed_callback_applies_its_status_and_keeps_no_code_entered(telesign, fake, client):
    message = services.send(provider="telesign", to=TO, body=BODY)
    body, headers = fake.callback(message.provider_message_id, 210)
    payload = json.loads(body)
    payload["verify"]["code_entered"] = "482913"
    body = json.dumps(payload).encode()
    headers["Authorization"] = f"TSA {CUSTOMER_ID}:{fake.sign(body)}"

    response = _post(client, body, {"Authorization": headers["Authorization"]})

    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.UNDELIVERED, "210")
    event = MessageEvent.objects.get(
        message=message, kind=EventKind.DELIVERY, to_value=Delivery.UNDELIVERED
    )
    assert event.source == Source.WEBHOOK
    assert event.detail["description"] == "Temporary phone error"
    assert event.detail["mcc"] == "310"
    assert "482913" not in json.dumps(event.detail)


def test_the_bare_signature_header_alone_is_accepted(telesign, fake, client):
    message = services.send(provider="telesign", to=TO, body=BODY)
    body, headers = fake.callback(message.provider_message_id, 200)

    response = _post(client, body, {"X-TS-Authorization": headers["X-TS-Authorization"]})

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_a_callback_without_a_signature_is_refused(telesign, fake, client):
    message = services.send(provider="telesign", to=TO, body=BODY)
    body, _ = fake.callback(message.provider_message_id, 200)
    assert _post(client, body, {}).status_code == 401
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_callback_signed_for_another_customer_is_refused(telesign, fake, client):
    message = services.send(provider="telesign", to=TO, body=BODY)
    body, headers = fake.callback(message.provider_message_id, 200)
    signature = headers["X-TS-Authorization"]
    response = _post(client, body, {"Authorization": f"TSA 00000000-other:{signature}"})
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_tampered_body_is_refused(telesign, fake, client):
    message = services.send(provider="telesign", to=TO, body=BODY)
    body, headers = fake.callback(message.provider_message_id, 203)
    tampered = body.replace(b'"code": 203', b'"code": 200')
    assert _post(client, tampered, {"Authorization": headers["Authorization"]}).status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_signed_body_that_is_not_a_callback_is_a_bad_request(telesign, fake, client):
    body = b'{"hello": "world"}'
    headers = {"Authorization": f"TSA {CUSTOMER_ID}:{fake.sign(body)}"}
    assert _post(client, body, headers).status_code == 400


def test_a_callback_with_a_code_not_applied_is_acknowledged_and_changes_nothing(
    telesign, fake, client
):
    message = services.send(provider="telesign", to=TO, body=BODY)
    body, headers = fake.callback(message.provider_message_id, 295)
    assert _post(client, body, {"Authorization": headers["Authorization"]}).status_code == 200
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "290")


def test_the_webhook_of_a_key_with_another_backend_is_not_found(settings, telesign, fake, client):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "other": {"BACKEND": "feedback_app.providers.locmem.LocmemProvider"},
        },
    }
    body, headers = fake.callback(UNKNOWN_REFERENCE, 200)
    path = reverse("feedback_app:webhook-telesign-key", kwargs={"provider": "other"})
    assert _post(client, body, {"Authorization": headers["Authorization"]}, path).status_code == 404


# -- the demo carrier --------------------------------------------------------------------------


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def carrier(settings, live_server):
    fake = CarrierTelesignFake(delays=(0.05, 0.1), undelivered_rate=0.1)
    with FakeServer(fake) as server:
        settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": live_server.url}
        configure(settings, CUSTOMER_ID=CUSTOMER_ID, API_KEY=API_KEY, BASE_URL=server.url)
        yield fake


@pytest.mark.django_db(transaction=True)
def test_the_carrier_delivers_through_signed_callbacks_and_takes_the_completion(carrier):
    assert not unreachable("+14155550123", carrier.undelivered_rate)
    message = services.send(provider="telesign", to="+14155550123", body=BODY)

    _wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    statuses = MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
    assert list(statuses.order_by("pk").values_list("to_value", flat=True)) == [
        Delivery.QUEUED,
        Delivery.SENT,
        Delivery.DELIVERED,
    ]
    assert services.confirm(message) is True
    assert carrier.completions == [message.provider_message_id]


@pytest.mark.django_db(transaction=True)
def test_the_carrier_never_reaches_an_unreachable_number(carrier):
    assert unreachable("+14155550125", carrier.undelivered_rate)
    message = services.send(provider="telesign", to="+14155550125", body=BODY)

    _wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.UNDELIVERED)
    message.refresh_from_db()
    assert message.provider_status == "210"


@pytest.mark.django_db(transaction=True)
def test_without_a_callback_url_the_carrier_posts_to_the_account_callback(
    settings, carrier, live_server
):
    # No PUBLIC_URL: the send names no callback_url, and Telesign posts to the account's.
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": None}
    carrier.callback_target = lambda: live_server.url + WEBHOOK
    message = services.send(provider="telesign", to="+14155550123", body=BODY)
    assert carrier.transactions[message.provider_message_id].callback_url is None

    _wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)


def test_the_account_callback_url_is_the_webhook_under_public_url(settings):
    from feedback_app.testing.telesign_fake import callback_url_from_settings

    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://app.example.com/"}
    assert callback_url_from_settings() == "https://app.example.com" + WEBHOOK
    assert callback_url_from_settings("telesign_eu") == (
        "https://app.example.com/feedback/webhooks/telesign/telesign_eu/"
    )
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": None}
    assert callback_url_from_settings() is None
