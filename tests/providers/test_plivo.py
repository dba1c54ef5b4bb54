"""The plivo backend through the real plivo client, against PlivoFake over HTTP: its wire, its
mappings, its webhook and its quirks (the contract is in test_plivo_contract.py)."""

from __future__ import annotations

import socket
import time
from typing import Any
from urllib.parse import urlencode

import pytest
from django.urls import reverse
from plivo.exceptions import ValidationError

from feedback_app import services
from feedback_app.conf import app_settings
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.plivo import STATUSES, PlivoProvider, delivery_status
from feedback_app.states import CallState, Delivery, EventKind, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.plivo_fake import (
    AUTH_ID,
    AUTH_TOKEN,
    CarrierPlivoFake,
    PlivoFake,
    sign_v2,
    sign_v3,
)

pytestmark = pytest.mark.django_db

SRC = "14155550100"
TO = "+12015550123"
BODY = "Your verification code is 482913"
POWERPACK = "d35f2e82-d387-427f-8594-6fa07613c43a"
WEBHOOK = "/feedback/webhooks/plivo/"


@pytest.fixture(autouse=True)
def plivo_environment(monkeypatch):
    """No credentials from the machine running the tests."""
    monkeypatch.delenv("PLIVO_AUTH_ID", raising=False)
    monkeypatch.delenv("PLIVO_AUTH_TOKEN", raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> PlivoFake:
    return PlivoFake()


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> PlivoFake:
    shared_fake.reset()
    return shared_fake


def configure(settings, key: str = "plivo", **plivo: Any) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: plivo},
    }


def full_config(server, **overrides: Any) -> dict[str, Any]:
    return {
        "AUTH_ID": AUTH_ID,
        "AUTH_TOKEN": AUTH_TOKEN,
        "BASE_URL": server.url + "/plivo",
        "SRC": SRC,
        **overrides,
    }


@pytest.fixture
def plivo(settings, server) -> PlivoProvider:
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    configure(settings, **full_config(server))
    return get_provider("plivo")


def send(**kwargs: Any) -> Message:
    return services.send(**{"provider": "plivo", "to": TO, "body": BODY, **kwargs})


def provider_send(provider: PlivoProvider, **kwargs: Any):
    arguments = {
        "to": TO,
        "body": BODY,
        "sender": None,
        "channel": "sms",
        "message_id": "our-id",
        **kwargs,
    }
    return provider.send(**arguments)


# -- statuses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("queued", Delivery.QUEUED),
        ("sent", Delivery.SENT),
        ("delivered", Delivery.DELIVERED),
        ("read", Delivery.DELIVERED),
        ("undelivered", Delivery.UNDELIVERED),
        ("failed", Delivery.FAILED),
        ("rejected", Delivery.REJECTED),
    ],
)
def test_each_plivo_state_maps_to_its_delivery_status(raw, status):
    assert delivery_status(raw) == status


def test_an_inbound_or_unknown_state_is_not_applied():
    assert delivery_status("received") is None
    assert delivery_status("Delivered") is None
    assert set(STATUSES.values()) <= set(Delivery.values)


# -- sending -----------------------------------------------------------------------------------


def test_a_send_is_trackable_with_the_webhook_as_callback_under_the_base_urls_path(plivo, fake):
    message = send()

    [request] = fake.requests
    assert request.method == "POST"
    assert request.path == f"/plivo/v1/Account/{AUTH_ID}/Message/"
    assert request.username == AUTH_ID
    assert request.json == {
        "src": SRC,
        "dst": TO,
        "text": BODY,
        "type": "sms",
        "url": "https://otp.example.com" + WEBHOOK,
        "method": "POST",
        "log": "true",
        "trackable": True,
    }
    assert message.provider_message_id in fake.messages
    assert message.delivery_status == Delivery.QUEUED
    assert message.provider_status == "queued"
    assert message.sender == SRC
    # The API's request id is kept; never the number or the text.
    assert set(message.metadata) >= {"api_id"}
    assert TO not in repr(message.metadata) and BODY not in repr(message.metadata)


def test_a_sender_in_uuid_form_is_a_powerpack(plivo, fake):
    result = provider_send(plivo, sender=POWERPACK)

    sent = fake.messages[result.provider_message_id]
    assert sent.powerpack_uuid == POWERPACK and sent.src is None
    assert "src" not in fake.requests[-1].json
    assert result.sender == POWERPACK


def test_the_powerpack_setting_is_the_default_sender(settings, server, fake):
    configure(settings, **full_config(server, SRC=None, POWERPACK_UUID=POWERPACK))
    result = provider_send(get_provider("plivo"))
    assert fake.messages[result.provider_message_id].powerpack_uuid == POWERPACK


def test_without_any_sender_nothing_is_sent(settings, server, fake):
    configure(settings, **full_config(server, SRC=None))
    with pytest.raises(PermanentError) as raised:
        provider_send(get_provider("plivo"))
    assert raised.value.code == "missing_sender"
    assert fake.requests == []


def test_status_callback_setting_and_other_keys_name_their_callback(settings, server, fake):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com/"}
    backend = "feedback_app.providers.plivo.PlivoProvider"
    configure(settings, key="plivo_eu", BACKEND=backend, **full_config(server))
    provider_send(get_provider("plivo_eu"))
    assert fake.requests[-1].json["url"] == "https://otp.example.com" + reverse(
        "feedback_app:webhook-plivo-key", kwargs={"provider": "plivo_eu"}
    )

    configure(settings, **full_config(server, STATUS_CALLBACK="https://hooks.example.com/p/"))
    provider_send(get_provider("plivo"))
    assert fake.requests[-1].json["url"] == "https://hooks.example.com/p/"


def test_without_public_url_no_callback_is_asked_for(settings, server, fake):
    configure(settings, **full_config(server))
    provider_send(get_provider("plivo"))
    assert "url" not in fake.requests[-1].json


def test_options_reach_the_sdk_and_a_boolean_log_becomes_its_string(plivo, fake):
    provider_send(plivo, log=False, message_expiry=600, dlt_template_id="1107")
    request = fake.requests[-1].json
    assert request["log"] == "false"
    assert request["message_expiry"] == 600
    assert request["dlt_template_id"] == "1107"


def test_unknown_options_and_other_channels_are_refused_before_a_request(plivo, fake):
    with pytest.raises(TypeError):
        provider_send(plivo, media_urls=["https://example.com/a.png"])
    with pytest.raises(PermanentError) as raised:
        provider_send(plivo, channel="whatsapp")
    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


# -- errors ------------------------------------------------------------------------------------


def test_the_sdks_own_argument_check_is_permanent_without_a_request(plivo, fake):
    with pytest.raises(PermanentError) as raised:
        provider_send(plivo, to="14155550100", sender=SRC)  # src == dst
    assert raised.value.code == "ValidationError"
    assert fake.requests == []


def test_plivos_error_text_is_kept_with_numbers_masked(plivo, fake):
    fake.fail_next(status=400, message="invalid dst parameter 12015550123")
    with pytest.raises(PermanentError) as raised:
        provider_send(plivo)
    assert raised.value.code == "400"
    assert "12015550123" not in str(raised.value)
    assert raised.value.message.startswith("invalid dst parameter ")


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_throttling_and_server_errors_are_retryable(plivo, fake, status):
    fake.fail_next(status=status, message="try later")
    with pytest.raises(RetryableError) as raised:
        provider_send(plivo)
    assert (raised.value.code, raised.value.message) == (str(status), "try later")


def test_a_closed_port_is_retryable(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(
        settings,
        AUTH_ID=AUTH_ID,
        AUTH_TOKEN=AUTH_TOKEN,
        SRC=SRC,
        BASE_URL=f"http://127.0.0.1:{port}",
    )
    with pytest.raises(RetryableError) as raised:
        provider_send(get_provider("plivo"))
    assert raised.value.code == "ConnectionError"


def test_an_auth_id_the_sdk_refuses_is_permanent(settings, server):
    configure(settings, **full_config(server, AUTH_ID="not-an-auth-id"))
    with pytest.raises(PermanentError) as raised:
        provider_send(get_provider("plivo"))
    assert raised.value.code == "invalid_auth_id"


def test_credentials_come_from_plivos_environment_variables(settings, server, fake, monkeypatch):
    monkeypatch.setenv("PLIVO_AUTH_ID", AUTH_ID)
    monkeypatch.setenv("PLIVO_AUTH_TOKEN", AUTH_TOKEN)
    configure(settings, BASE_URL=server.url, SRC=SRC)
    provider = get_provider("plivo")
    assert not check_ids(provider.config) & {"feedback_app.W120", "feedback_app.W121"}
    provider_send(provider)
    assert fake.requests[-1].username == AUTH_ID


# -- conversions -------------------------------------------------------------------------------


def test_a_confirmation_posts_converted_at_the_documented_path_with_its_time(
    plivo, fake, django_capture_on_commit_callbacks
):
    message = send()
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    message.refresh_from_db()
    [request] = [r for r in fake.requests if r.path.endswith("/conversion/")]
    assert request.path == (
        f"/plivo/v1/account/{AUTH_ID}/message/{message.provider_message_id}/conversion/"
    )
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "status": "CONVERTED",
        "timestamp": message.confirmed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def test_a_failure_posts_not_converted(plivo, fake, django_capture_on_commit_callbacks):
    message = send()
    with django_capture_on_commit_callbacks(execute=True):
        services.fail(message)
    assert [(c.message_uuid, c.status) for c in fake.conversions] == [
        (message.provider_message_id, "NOT_CONVERTED")
    ]


def test_expiry_posts_not_converted_at_the_expiry_and_a_late_conversion_follows(
    plivo, fake, clock, django_capture_on_commit_callbacks
):
    message = send()
    clock.advance(hours=1, seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue() == 1
    expired_at = MessageEvent.objects.get(
        message=message, kind=EventKind.FEEDBACK, to_value=Feedback.EXPIRED
    ).created_at
    clock.advance(minutes=5)
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    assert [(c.status, c.timestamp) for c in fake.conversions] == [
        ("NOT_CONVERTED", expired_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("CONVERTED", clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")),
    ]


def test_a_superseded_message_is_reported_converted_with_others(
    plivo, fake, django_capture_on_commit_callbacks
):
    first = send(verification="login-7")
    resend = send(verification="login-7")
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(resend)

    first.refresh_from_db()
    assert first.feedback == Feedback.SUPERSEDED
    [call] = ProviderCall.objects.filter(message=first)
    assert (call.payload, call.state) == ({"outcome": "superseded"}, CallState.SUCCEEDED)
    assert sorted((c.message_uuid, c.status) for c in fake.conversions) == sorted(
        [
            (resend.provider_message_id, "CONVERTED"),
            (first.provider_message_id, "CONVERTED_WITH_OTHERS"),
        ]
    )


def test_a_superseded_expired_message_replaces_its_waiting_not_converted(
    plivo, fake, clock, django_capture_on_commit_callbacks
):
    first = send(verification="login-8")
    resend = send(verification="login-8")
    clock.advance(hours=1, seconds=1)
    services.expire_overdue()  # not run: the NOT_CONVERTED calls wait in the outbox
    services.confirm(resend)

    calls = ProviderCall.objects.filter(message=first).order_by("pk")
    assert [(c.payload["outcome"], c.state) for c in calls] == [
        ("failed", CallState.SUPERSEDED),
        ("superseded", CallState.PENDING),
    ]


def test_a_report_for_something_not_a_message_uuid_makes_no_request(plivo, fake):
    with pytest.raises(PermanentError) as raised:
        plivo.report_feedback(
            provider_message_id="../../Call", outcome="confirmed", idempotency_key="k"
        )
    assert raised.value.code == "invalid_uuid"
    assert fake.requests == []


def test_a_conversion_for_a_message_plivo_does_not_know_is_permanent(plivo, fake):
    with pytest.raises(PermanentError) as raised:
        plivo.report_feedback(
            provider_message_id="0b5ee6b4-9a33-4a8b-9a5e-6a1f0e4b6f00",
            outcome="confirmed",
            idempotency_key="k",
        )
    assert raised.value.code == "404"


# -- fetching ----------------------------------------------------------------------------------


def test_fetch_status_reads_the_message_state_and_its_error_code(plivo, fake):
    message = send()
    fake.set_status(message.provider_message_id, "undelivered", "30")

    update = plivo.fetch_status(message)

    assert fake.requests[-1].path == (
        f"/plivo/v1/Account/{AUTH_ID}/Message/{message.provider_message_id}/"
    )
    assert (update.delivery_status, update.provider_status) == (Delivery.UNDELIVERED, "undelivered")
    assert update.detail == {"error_code": "30"}


def test_fetch_status_of_a_delivered_message_has_no_error_code(plivo, fake):
    message = send()
    fake.set_status(message.provider_message_id, "delivered")
    update = plivo.fetch_status(message)
    assert (update.delivery_status, update.detail) == (Delivery.DELIVERED, {})


def test_sent_and_queued_messages_are_synced():
    assert PlivoProvider.sync_statuses == {Delivery.QUEUED, Delivery.SENT}


# -- the webhook -------------------------------------------------------------------------------


def post_callback(client, fake, message, status, *, signatures=("v3", "v2"), token=None, **extra):
    params = {**fake.callback_params(message.provider_message_id, status), **extra}
    # Plivo signs the URL it called: PUBLIC_URL's when the site sets one.
    url = (app_settings.PUBLIC_URL or "http://testserver").rstrip("/") + WEBHOOK
    headers = fake.signed_headers(url, params, auth_token=token, signatures=signatures)
    return client.post(
        WEBHOOK,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )


def test_a_v2_signed_callback_is_applied(plivo, fake, client):
    message = send()
    response = post_callback(client, fake, message, "delivered", signatures=("v2",))
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_v2_is_refused_when_the_settings_take_v3_only(settings, server, fake, client):
    configure(settings, **full_config(server, WEBHOOK_SIGNATURES=["v3"]))
    message = send()
    response = post_callback(client, fake, message, "delivered", signatures=("v2",))
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_wrong_v3_is_refused_even_beside_a_right_v2(plivo, fake, client):
    message = send()
    params = fake.callback_params(message.provider_message_id, "delivered")
    url = "http://testserver" + WEBHOOK
    headers = {
        "X-Plivo-Signature-V3": sign_v3("wrong-token", url, params, "n1"),
        "X-Plivo-Signature-V3-Nonce": "n1",
        "X-Plivo-Signature-V2": sign_v2(AUTH_TOKEN, url, "n2"),
        "X-Plivo-Signature-V2-Nonce": "n2",
    }
    response = client.post(
        WEBHOOK,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )
    assert response.status_code == 403


def test_v3_covers_the_parameters_a_changed_status_is_refused(plivo, fake, client):
    message = send()
    params = fake.callback_params(message.provider_message_id, "undelivered")
    headers = fake.signed_headers("http://testserver" + WEBHOOK, params, signatures=("v3",))
    params["Status"] = "delivered"
    response = client.post(
        WEBHOOK,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )
    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_callback_without_a_signature_is_refused(plivo, fake, client):
    message = send()
    params = fake.callback_params(message.provider_message_id, "delivered")
    response = client.post(
        WEBHOOK, data=urlencode(params), content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 403


def test_the_signed_url_is_the_public_one_behind_a_proxy(plivo, fake, client):
    # PUBLIC_URL is https://otp.example.com: Plivo signed the URL it called, not ours.
    message = send()
    params = fake.callback_params(message.provider_message_id, "delivered")
    headers = fake.signed_headers("https://otp.example.com" + WEBHOOK, params)
    response = client.post(
        WEBHOOK,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )
    assert response.status_code == 200


def test_the_error_code_is_kept_and_no_number_is(settings, server, fake, client):
    configure(settings, **full_config(server))
    message = send()
    fake.set_status(message.provider_message_id, "undelivered", "30")
    assert post_callback(client, fake, message, "undelivered").status_code == 200

    event = MessageEvent.objects.get(
        message=message, kind=EventKind.DELIVERY, to_value=Delivery.UNDELIVERED
    )
    assert event.detail["error_code"] == "30"
    assert {"mcc", "mnc", "units"} <= set(event.detail)
    assert TO[1:] not in repr(event.detail) and SRC not in repr(event.detail)


def test_an_inbound_state_is_acknowledged_and_ignored(settings, server, fake, client):
    configure(settings, **full_config(server))
    message = send()
    assert post_callback(client, fake, message, "received").status_code == 200
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "queued")


def test_a_signed_request_that_is_no_status_callback_is_a_400(settings, server, fake, client):
    configure(settings, **full_config(server))
    params = {"CallUUID": "x", "CallStatus": "completed"}
    headers = fake.signed_headers("http://testserver" + WEBHOOK, params)
    response = client.post(
        WEBHOOK,
        data=urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers=headers,
    )
    assert response.status_code == 400


def test_the_webhook_of_a_key_with_another_backend_is_a_404(settings, client):
    configure(settings, key="sms", BACKEND="feedback_app.providers.locmem.LocmemProvider")
    path = reverse("feedback_app:webhook-plivo-key", kwargs={"provider": "sms"})
    assert client.post(path, data={"MessageUUID": "x", "Status": "sent"}).status_code == 404


# -- system checks -----------------------------------------------------------------------------


def check_ids(config: dict[str, Any]) -> set[str]:
    return {message.id for message in PlivoProvider.check_config("plivo", config)}


def test_a_complete_configuration_passes_the_checks(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    assert check_ids({"AUTH_ID": AUTH_ID, "AUTH_TOKEN": AUTH_TOKEN, "SRC": SRC}) == set()


@pytest.mark.parametrize(
    ("config", "check_id"),
    [
        ({"AUTH_ID": "MA123"}, "feedback_app.E120"),
        ({"POWERPACK_UUID": POWERPACK}, "feedback_app.E121"),
        ({"SRC": None}, "feedback_app.W122"),
        ({"WEBHOOK_SIGNATURES": ["v1"]}, "feedback_app.E122"),
        ({"WEBHOOK_SIGNATURES": "v3"}, "feedback_app.E122"),
        ({"WEBHOOK_SIGNATURES": []}, "feedback_app.E122"),
        ({"WEBHOOK_SIGNATURES": 3}, "feedback_app.E122"),
    ],
)
def test_each_misconfiguration_has_its_check(settings, config, check_id):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    base = {"AUTH_ID": AUTH_ID, "AUTH_TOKEN": AUTH_TOKEN, "SRC": SRC}
    merged = {name: value for name, value in {**base, **config}.items() if value is not None}
    assert check_ids(merged) == {check_id}


def test_no_public_url_and_no_status_callback_warns(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": None}
    config = {"AUTH_ID": AUTH_ID, "AUTH_TOKEN": AUTH_TOKEN, "SRC": SRC}
    assert check_ids(config) == {"feedback_app.W123"}
    assert check_ids({**config, "STATUS_CALLBACK": "https://hooks.example.com/"}) == set()


# -- the demo carrier, end to end --------------------------------------------------------------


@pytest.fixture
def carrier(settings, live_server):
    fake = CarrierPlivoFake(delays=(0.05, 0.1), undelivered_rate=0.1)
    with FakeServer(fake) as server:
        settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": live_server.url}
        configure(settings, **full_config(server))
        yield fake


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_carrier_delivers_through_signed_callbacks_and_the_conversion_is_reported(carrier):
    message = services.send(provider="plivo", to="+14155550123", body=BODY)
    assert carrier.messages[message.provider_message_id].trackable is True

    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    assert services.confirm(message) is True
    assert [(c.message_uuid, c.status) for c in carrier.conversions] == [
        (message.provider_message_id, "CONVERTED")
    ]
    statuses = MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
    assert list(statuses.order_by("pk").values_list("to_value", flat=True)) == [
        Delivery.QUEUED,
        Delivery.SENT,
        Delivery.DELIVERED,
    ]


@pytest.mark.django_db(transaction=True)
def test_the_carrier_leaves_an_unreachable_number_undelivered_with_its_error(carrier):
    assert unreachable("+14155550125", 0.1) and not unreachable("+14155550123", 0.1)
    message = services.send(provider="plivo", to="+14155550125", body=BODY)

    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.UNDELIVERED)
    event = MessageEvent.objects.get(
        message=message, kind=EventKind.DELIVERY, to_value=Delivery.UNDELIVERED
    )
    assert event.detail["error_code"] == "20"
    assert carrier.messages[message.provider_message_id].status == "undelivered"


@pytest.mark.django_db(transaction=True)
def test_the_carrier_signs_v2_only_when_told_and_the_webhook_takes_it(carrier):
    carrier.signatures = ("v2",)
    message = services.send(provider="plivo", to="+14155550123", body=BODY)
    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)


def test_the_fake_takes_plivos_three_statuses_with_an_rfc_3339_timestamp_only(plivo, fake):
    uuid = send().provider_message_id
    plivo.client.conversion(AUTH_ID, uuid, "CONVERTED_WITH_OTHERS", "2020-08-01T11:32:26Z")
    for status, timestamp in [
        ("CONVERTED", "2020-08-01 11:32:26"),
        ("USED", "2020-08-01T11:32:26Z"),
    ]:
        with pytest.raises(ValidationError):
            plivo.client.conversion(AUTH_ID, uuid, status, timestamp)
    assert [(c.status, c.timestamp) for c in fake.conversions] == [
        ("CONVERTED_WITH_OTHERS", "2020-08-01T11:32:26Z")
    ]
