"""The vonage backend through the real vonage SDK against VonageFake over HTTP, its signed
delivery receipt webhook, and the carrier fake end to end through a live server."""

from __future__ import annotations

import base64
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.vonage import (
    CONVERSION_NOT_ENABLED,
    RETRYABLE_STATUSES,
    STATUSES,
    VonageProvider,
    delivery_status,
)
from feedback_app.states import CallState, Delivery, EventKind, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.vonage_fake import (
    API_KEY,
    API_SECRET,
    SIGNATURE_SECRET,
    STATUS_TEXTS,
    CarrierVonageFake,
    VonageFake,
)
from feedback_app.webhooks.vonage import canonical, signature

pytestmark = pytest.mark.django_db

TO = "+12015550123"
FROM = "AcmeOTP"
BODY = "Your verification code is 482913"
WEBHOOK = "/feedback/webhooks/vonage/"


@pytest.fixture(autouse=True)
def vonage_environment(monkeypatch):
    """No credentials from the machine running the tests."""
    for name in ("API_KEY", "API_SECRET", "SIGNATURE_SECRET", "SIGNATURE_METHOD"):
        monkeypatch.delenv(f"VONAGE_{name}", raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> VonageFake:
    return VonageFake()


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> VonageFake:
    shared_fake.reset()
    return shared_fake


def configure(settings, key: str = "vonage", **vonage: Any) -> VonageProvider:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: vonage},
    }
    provider = get_provider(key)
    assert isinstance(provider, VonageProvider)
    return provider


def full_config(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "API_KEY": API_KEY,
        "API_SECRET": API_SECRET,
        "SIGNATURE_SECRET": SIGNATURE_SECRET,
        "BASE_URL": server.url + "/vonage",
        "FROM": FROM,
        **overrides,
    }


@pytest.fixture
def vonage(settings, server) -> VonageProvider:
    return configure(settings, **full_config(server))


def send(**kwargs: Any) -> Message:
    return services.send(**{"provider": "vonage", "to": TO, "body": BODY, **kwargs})


def sends(fake: VonageFake) -> list:
    return fake.requests_to("/sms/json")


def conversions(fake: VonageFake) -> list:
    return fake.requests_to("/conversions/sms")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def set_public_url(settings, url: str) -> None:
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": url}


# -- sending ---------------------------------------------------------------------------------------


def test_send_posts_the_sms_with_our_id_a_receipt_request_and_our_callback(settings, vonage, fake):
    set_public_url(settings, "https://otp.example.com/")

    message = send()

    [request] = sends(fake)
    assert request.path == "/vonage/sms/json"
    assert request.form == {
        "to": TO.removeprefix("+"),
        "from": FROM,
        "text": BODY,
        "client-ref": str(message.pk),
        "callback": "https://otp.example.com/feedback/webhooks/vonage/",
        "status-report-req": "True",
        "type": "text",
    }
    # Credentials go in the Basic header the SDK sends, never in the form.
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert fake.messages[message.provider_message_id].client_ref == str(message.pk)
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "")
    assert (message.sender, message.feedback) == (FROM, Feedback.PENDING)
    assert message.metadata == {"network": "23410", "message_price": "0.03330000"}


def test_a_body_outside_the_gsm_alphabet_is_sent_as_unicode(vonage, fake):
    send(body="Ваш код 482913")

    [request] = sends(fake)
    assert request.form["type"] == "unicode"


def test_the_callback_setting_wins_over_public_url(settings, server, fake):
    set_public_url(settings, "https://otp.example.com")
    configure(settings, **full_config(server, CALLBACK="https://hooks.example.com/dlr"))

    send()

    assert sends(fake)[0].form["callback"] == "https://hooks.example.com/dlr"


def test_without_public_url_or_callback_none_is_sent(vonage, fake):
    send()

    assert "callback" not in sends(fake)[0].form


def test_a_callback_longer_than_vonage_takes_is_left_out_and_checked(settings, server, fake):
    long_url = "https://" + "a" * 90 + ".example.com/dlr"
    config = full_config(server, CALLBACK=long_url)
    configure(settings, **config)

    send()

    assert "callback" not in sends(fake)[0].form
    assert "feedback_app.W115" in check_ids(config)


def test_another_key_with_the_vonage_backend_gets_its_own_webhook_url(settings, server, fake):
    set_public_url(settings, "https://otp.example.com")
    configure(
        settings,
        "vonage_eu",
        BACKEND="feedback_app.providers.vonage.VonageProvider",
        **full_config(server),
    )

    services.send(provider="vonage_eu", to=TO, body=BODY)

    assert (
        sends(fake)[0].form["callback"]
        == "https://otp.example.com/feedback/webhooks/vonage/vonage_eu/"
    )


def test_the_sender_argument_wins_over_the_setting_and_loses_its_plus(vonage, fake):
    message = send(sender="+15005550006")

    assert sends(fake)[0].form["from"] == "15005550006"
    assert message.sender == "+15005550006"


def test_without_any_sender_nothing_is_sent(settings, server, fake):
    provider = configure(settings, **full_config(server, FROM=None))

    with pytest.raises(PermanentError) as raised:
        provider.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m")

    assert raised.value.code == "missing_sender"
    assert fake.requests == []


def test_options_pass_through_to_the_message(vonage, fake):
    result = vonage.send(
        to=TO,
        body=BODY,
        sender=None,
        channel="sms",
        message_id="8d6e7c1a-0000-4000-8000-000000000001",
        ttl=300000,
        entity_id="1101456780000012345",
    )

    form = sends(fake)[0].form
    assert (form["ttl"], form["entity-id"]) == ("300000", "1101456780000012345")
    assert fake.messages[result.provider_message_id].extra == {
        "ttl": "300000",
        "entity-id": "1101456780000012345",
    }


def test_an_unknown_option_is_a_programming_error(vonage, fake):
    with pytest.raises(TypeError, match="validity"):
        vonage.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m", validity=1)
    assert fake.requests == []


def test_an_invalid_option_is_permanent_before_any_request_and_quotes_neither_body_nor_number(
    vonage, fake
):
    with pytest.raises(PermanentError) as raised:
        vonage.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m", ttl=5)

    assert raised.value.code == "invalid_request"
    assert "ttl" in raised.value.message
    assert BODY not in str(raised.value) and "2015550123" not in str(raised.value)
    assert fake.requests == []


def test_a_channel_the_sms_api_does_not_serve_is_refused_before_any_request(vonage, fake):
    with pytest.raises(PermanentError) as raised:
        vonage.send(to=TO, body=BODY, sender=None, channel="whatsapp", message_id="m")
    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


def test_a_long_message_keeps_every_parts_id_and_is_known_by_its_first(vonage, fake):
    message = send(body="Your verification code is 482913. " * 8)

    parts = message.metadata["part_message_ids"]
    assert len(parts) == 2
    assert message.provider_message_id == parts[0]
    assert fake.messages[parts[1]].part_ids == parts
    assert message.metadata["message_price"] == "0.06660000"


def test_the_body_and_number_are_stored_nowhere(vonage, fake):
    message = send()

    stored = repr(Message.objects.filter(pk=message.pk).values().get())
    stored += repr(list(MessageEvent.objects.filter(message=message).values()))
    assert BODY not in stored and "2015550123" not in stored


# -- errors ----------------------------------------------------------------------------------------

#: Every documented SMS API status but 0, and the side it lands on.
SMS_STATUSES = sorted(STATUS_TEXTS, key=int) + ["11", "14", "22", "32"]


@pytest.mark.parametrize("status", SMS_STATUSES)
def test_each_sms_api_status_lands_on_its_side_with_vonages_code_and_text(vonage, fake, status):
    fake.fail_next(status=status, message=f"refused: {status} for +12025550143")

    with pytest.raises(ProviderErrorTypes) as raised:
        send()

    # Throttled, internal error, too many binds ("back-off and retry"); the rest is final.
    expected = RetryableError if status in {"1", "5", "10"} else PermanentError
    assert (status in RETRYABLE_STATUSES) == (expected is RetryableError)
    assert type(raised.value) is expected
    assert raised.value.code == status
    assert f"refused: {status} for" in raised.value.message
    assert "+12025550143" not in raised.value.message
    assert not Message.objects.exists()


ProviderErrorTypes = (RetryableError, PermanentError)


@pytest.mark.parametrize(
    ("http_status", "side"),
    [
        (429, RetryableError),
        (500, RetryableError),
        (502, RetryableError),
        (503, RetryableError),
        (401, PermanentError),
        (403, PermanentError),
        (404, PermanentError),
    ],
)
def test_http_errors_land_on_their_side_with_the_status_as_code(vonage, fake, http_status, side):
    fake.fail_next(http_status=http_status, message="Gateway says no")

    with pytest.raises(side) as raised:
        send()

    assert raised.value.code == str(http_status)
    assert "Gateway says no" in raised.value.message


def test_wrong_credentials_are_permanent_with_status_4(settings, server, fake):
    configure(settings, **full_config(server, API_SECRET="not-the-secret"))

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "4"
    assert raised.value.message == "Bad Credentials"


def test_a_timeout_is_retryable(settings, server, fake):
    configure(settings, **full_config(server, TIMEOUT=0.2))
    fake.latency = 1.0

    started = time.monotonic()
    with pytest.raises(RetryableError) as raised:
        send()

    assert time.monotonic() - started < 0.9
    assert raised.value.code == "ReadTimeout"


def test_a_refused_connection_is_retryable(settings):
    configure(
        settings,
        API_KEY=API_KEY,
        API_SECRET=API_SECRET,
        FROM=FROM,
        BASE_URL=f"http://127.0.0.1:{closed_port()}",
    )

    with pytest.raises(RetryableError) as raised:
        send()

    assert raised.value.code == "ConnectionError"


def test_without_credentials_nothing_is_sent(settings, server, fake):
    configure(settings, **full_config(server, API_SECRET=None))

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "missing_credentials"
    assert fake.requests == []


def test_credentials_come_from_the_sdks_environment_variables(settings, server, fake, monkeypatch):
    monkeypatch.setenv("VONAGE_API_KEY", API_KEY)
    monkeypatch.setenv("VONAGE_API_SECRET", API_SECRET)
    configure(settings, BASE_URL=server.url, FROM=FROM)

    message = send()

    assert message.provider_message_id in fake.messages


def test_the_client_is_built_once_per_process(vonage, fake):
    assert vonage.client is vonage.client
    send()
    send()
    assert len(sends(fake)) == 2


def test_neither_credentials_nor_the_body_nor_the_number_are_logged(
    vonage, fake, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)

    message = send()
    send()  # the SDK keeps the previous request's Authorization header for its next log line
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    assert "request to https://" in caplog.text  # the SDK's request log is on, redacted
    basic = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
    for secret in (API_SECRET, basic, BODY, TO.removeprefix("+")):
        assert secret not in caplog.text


# -- conversions -----------------------------------------------------------------------------------


def test_a_confirmation_submits_delivered_true_with_the_confirmation_time(
    vonage, fake, django_capture_on_commit_callbacks
):
    message = send()

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    message.refresh_from_db()
    [request] = conversions(fake)
    assert request.path == "/vonage/conversions/sms"
    assert request.form == {
        "message-id": message.provider_message_id,
        "delivered": "True",
        "timestamp": message.confirmed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }
    [conversion] = fake.conversions
    assert (conversion.message_id, conversion.delivered) == (message.provider_message_id, True)


@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_a_failure_or_an_expiry_submits_delivered_false(
    vonage, fake, clock, django_capture_on_commit_callbacks, outcome
):
    message = send()

    with django_capture_on_commit_callbacks(execute=True):
        if outcome == "failed":
            services.fail(message)
        else:
            services.expire_overdue(clock.advance(days=30))

    message.refresh_from_db()
    assert message.feedback == outcome
    assert [(c.message_id, c.delivered) for c in fake.conversions] == [
        (message.provider_message_id, False)
    ]


def test_a_late_confirmation_after_a_failure_submits_true_after_false(
    vonage, fake, django_capture_on_commit_callbacks
):
    message = send()
    with django_capture_on_commit_callbacks(execute=True):
        services.fail(message)
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    assert [c.delivered for c in fake.conversions] == [False, True]


def test_an_account_without_the_conversion_api_is_permanent_with_a_clear_code(vonage, fake):
    message = send()
    fake.conversion_enabled = False

    with pytest.raises(PermanentError) as raised:
        vonage.report_feedback(
            provider_message_id=message.provider_message_id,
            outcome="confirmed",
            idempotency_key="k",
        )

    assert raised.value.code == CONVERSION_NOT_ENABLED
    assert "not enabled" in raised.value.message
    assert fake.conversions == []


def test_the_outbox_gives_up_on_a_conversion_the_account_cannot_take(
    vonage, fake, django_capture_on_commit_callbacks
):
    message = send()
    fake.conversion_enabled = False

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    [call] = ProviderCall.objects.filter(message=message)
    assert call.state == CallState.FAILED
    assert call.last_error_code == CONVERSION_NOT_ENABLED


def test_a_throttled_conversion_is_retryable(vonage, fake):
    message = send()
    fake.fail_next(http_status=429)

    with pytest.raises(RetryableError) as raised:
        vonage.report_feedback(
            provider_message_id=message.provider_message_id, outcome="failed", idempotency_key="k"
        )
    assert raised.value.code == "429"


def test_a_conversion_for_a_message_vonage_does_not_know_is_permanent(vonage, fake):
    with pytest.raises(PermanentError) as raised:
        vonage.report_feedback(
            provider_message_id="0A0000000123ABCD", outcome="confirmed", idempotency_key="k"
        )
    assert raised.value.code == "420"


@pytest.mark.parametrize(
    ("delivery", "outcome"),
    [
        (Delivery.DELIVERED, None),
        (Delivery.SENT, "failed"),
        (Delivery.QUEUED, "failed"),
        (Delivery.UNDELIVERED, "failed"),
    ],
)
def test_a_superseded_message_is_reported_false_unless_it_was_delivered(
    vonage, fake, delivery, outcome
):
    message = send()
    message.delivery_status = delivery

    assert vonage.superseded_outcome(message) == outcome


# -- statuses --------------------------------------------------------------------------------------


def test_every_documented_receipt_status_is_mapped():
    assert set(STATUSES) == {
        "accepted",
        "buffered",
        "delivered",
        "expired",
        "failed",
        "rejected",
        "unknown",
    }
    assert delivery_status("submitted") is None


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("accepted", Delivery.SENT),
        ("buffered", Delivery.SENT),
        ("delivered", Delivery.DELIVERED),
        ("expired", Delivery.UNDELIVERED),
        ("failed", Delivery.UNDELIVERED),
        ("rejected", Delivery.REJECTED),
        ("unknown", Delivery.UNKNOWN),
    ],
)
def test_receipt_statuses_map_to_the_delivery_vocabulary(raw, status):
    assert delivery_status(raw) == status


# -- checks ----------------------------------------------------------------------------------------


def check_ids(config: dict[str, Any], key: str = "vonage") -> set[str]:
    return {message.id for message in VonageProvider.check_config(key, config)}


def test_a_complete_configuration_passes_the_checks(settings, server):
    set_public_url(settings, "https://otp.example.com")
    assert check_ids(full_config(server)) == set()


def test_an_unknown_signature_method_is_an_error(settings, server):
    set_public_url(settings, "https://otp.example.com")
    assert check_ids(full_config(server, SIGNATURE_METHOD="sha384")) == {"feedback_app.E113"}


def test_no_callback_and_no_public_url_warns(server):
    assert check_ids(full_config(server)) == {"feedback_app.W114"}


def test_credentials_in_the_environment_satisfy_the_checks(settings, monkeypatch):
    set_public_url(settings, "https://otp.example.com")
    for name, value in (
        ("API_KEY", API_KEY),
        ("API_SECRET", API_SECRET),
        ("SIGNATURE_SECRET", SIGNATURE_SECRET),
    ):
        monkeypatch.setenv(f"VONAGE_{name}", value)
    assert check_ids({}) == set()


def test_the_checks_run_with_manage_py_check(settings, server):
    configure(settings, FROM=FROM)
    ids = {message.id for message in run_checks()}
    assert {"feedback_app.E110", "feedback_app.E111", "feedback_app.W112"} <= ids


# -- the delivery receipt webhook ------------------------------------------------------------------


def post_receipt(client, params: dict[str, Any], *, as_json: bool = False, path: str = WEBHOOK):
    if as_json:
        return client.post(path, data=json.dumps(params), content_type="application/json")
    return client.post(
        path, data=urlencode(params), content_type="application/x-www-form-urlencoded"
    )


def test_a_signed_get_receipt_is_applied_with_its_time_and_detail(vonage, fake, client):
    message = send()
    at = datetime(2026, 12, 7, 12, 10, 29, tzinfo=UTC)
    params = fake.receipt(message.provider_message_id, "failed", err_code="3", at=at)

    response = client.get(WEBHOOK, params)

    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.UNDELIVERED, "failed")
    event = MessageEvent.objects.get(message=message, to_value=Delivery.UNDELIVERED)
    assert event.detail == {
        "provider_status": "failed",
        "error_code": "3",
        "network_code": "23410",
        "price": "0.03330000",
        "scts": "2612071210",
    }
    assert event.created_at == at


def test_a_signed_json_receipt_is_applied(vonage, fake, client):
    message = send()

    response = post_receipt(
        client, fake.receipt(message.provider_message_id, "delivered"), as_json=True
    )

    assert response.status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


@pytest.mark.parametrize("method", ["md5", "sha1", "sha256", "sha512"])
def test_hmac_signatures_are_checked_with_the_sdk(settings, server, fake, client, method):
    configure(settings, **full_config(server, SIGNATURE_METHOD=method))
    message = send()

    good = fake.receipt(message.provider_message_id, "delivered", method=method)
    forged = fake.receipt(message.provider_message_id, "delivered", method="md5hash")

    assert post_receipt(client, forged).status_code == 403
    assert post_receipt(client, good).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_an_upper_case_hmac_signature_is_accepted(settings, server, fake, client):
    configure(settings, **full_config(server, SIGNATURE_METHOD="sha256"))
    message = send()
    params = fake.receipt(message.provider_message_id, "delivered", method="sha256")
    params["sig"] = params["sig"].upper()

    assert post_receipt(client, params).status_code == 200


@pytest.mark.parametrize("change", ["status", "sig", "drop_timestamp", "unsigned"])
def test_a_tampered_or_unsigned_receipt_is_refused_and_changes_nothing(
    vonage, fake, client, change
):
    message = send()
    params = fake.receipt(message.provider_message_id, "accepted")
    if change == "status":
        params["status"] = "delivered"
    elif change == "sig":
        params["sig"] = "0" * 32
    elif change == "drop_timestamp":
        del params["timestamp"]
    else:
        params = fake.receipt(message.provider_message_id, "delivered", secret=None)

    assert post_receipt(client, params).status_code == 403
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "")
    events = MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
    assert list(events.values_list("to_value", flat=True)) == [Delivery.QUEUED]


def test_without_a_signature_secret_every_receipt_is_refused(settings, server, fake, client):
    configure(settings, **full_config(server, SIGNATURE_SECRET=None))
    message = send()

    response = post_receipt(client, fake.receipt(message.provider_message_id, "delivered"))

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_the_secret_may_come_from_the_environment(settings, server, fake, client, monkeypatch):
    monkeypatch.setenv("VONAGE_SIGNATURE_SECRET", SIGNATURE_SECRET)
    monkeypatch.setenv("VONAGE_SIGNATURE_METHOD", "sha512")
    configure(settings, **full_config(server, SIGNATURE_SECRET=None))
    message = send()

    params = fake.receipt(message.provider_message_id, "delivered", method="sha512")
    assert post_receipt(client, params).status_code == 200


def test_a_receipt_for_another_parts_id_is_found_by_client_ref(vonage, fake, client):
    message = send(body="Your verification code is 482913. " * 8)
    second = message.metadata["part_message_ids"][1]

    assert post_receipt(client, fake.receipt(second, "delivered")).status_code == 200

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_buffered_after_accepted_refines_the_provider_status(vonage, fake, client):
    message = send()

    post_receipt(client, fake.receipt(message.provider_message_id, "accepted"))
    post_receipt(client, fake.receipt(message.provider_message_id, "buffered"))

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.SENT, "buffered")


def test_a_status_vonage_does_not_document_is_acknowledged_and_ignored(vonage, fake, client):
    message = send()

    assert (
        post_receipt(client, fake.receipt(message.provider_message_id, "submitted")).status_code
        == 200
    )

    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_signed_request_that_is_no_receipt_is_a_bad_request(vonage, client):
    params = {"timestamp": "1765000000", "nonce": "abc", "text": "hello"}
    params["sig"] = signature(params, SIGNATURE_SECRET, "md5hash")

    assert post_receipt(client, params).status_code == 400


def test_a_receipt_for_a_key_not_configured_is_not_found(vonage, fake, client):
    message = send()
    params = fake.receipt(message.provider_message_id, "delivered")

    response = post_receipt(
        client, params, path=reverse("feedback_app:webhook-vonage-key", args=["nope"])
    )

    assert response.status_code == 404


def test_a_receipt_on_another_providers_key_is_refused(settings, vonage, fake, client):
    message = send()
    params = fake.receipt(message.provider_message_id, "delivered")
    path = reverse("feedback_app:webhook-vonage-key", args=["locmem"])

    assert post_receipt(client, params, path=path).status_code == 404


def test_the_signed_string_replaces_ampersands_and_equals_in_values():
    assert canonical({"b": "x&y=z", "a": "1", "sig": "s"}) == "&a=1&b=x_y_z"
    # Vonage's md5hash: the MD5 of that string followed by the secret.
    import hashlib

    assert signature({"a": "1"}, "secret", "md5hash") == hashlib.md5(b"&a=1secret").hexdigest()  # noqa: S324


# -- the carrier fake, end to end through a live server -------------------------------------------


class Mounted:
    """The carrier fake under ``/vonage``, as the demo serves it beside the others."""

    def __init__(self, app: CarrierVonageFake) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable:
        if not environ.get("PATH_INFO", "").startswith("/vonage/"):
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"no fake serves this path\n"]
        return self.app(environ, start_response)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def carrier(settings, live_server):
    fake = CarrierVonageFake(delays=(0.05, 0.1), undelivered_rate=0.1)
    with FakeServer(Mounted(fake)) as server:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PUBLIC_URL": live_server.url,
            "PROVIDERS": {
                **settings.FEEDBACK_APP["PROVIDERS"],
                "vonage": {
                    "API_KEY": API_KEY,
                    "API_SECRET": API_SECRET,
                    "SIGNATURE_SECRET": SIGNATURE_SECRET,
                    "FROM": FROM,
                    "BASE_URL": server.url + "/vonage",
                },
            },
        }
        yield fake


@pytest.mark.django_db(transaction=True)
def test_the_carrier_sends_signed_receipts_to_the_callback_and_the_conversion_is_reported(carrier):
    assert not unreachable("+14155550123", carrier.undelivered_rate)
    message = services.send(provider="vonage", to="+14155550123", body=BODY)

    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    assert carrier.messages[message.provider_message_id].receipts == ["accepted", "delivered"]
    assert services.confirm(message) is True
    assert [(c.message_id, c.delivered) for c in carrier.conversions] == [
        (message.provider_message_id, True)
    ]


@pytest.mark.django_db(transaction=True)
def test_an_unreachable_number_ends_undelivered_with_absent_subscriber(carrier):
    assert unreachable("+14155550125", carrier.undelivered_rate)
    message = services.send(provider="vonage", to="+14155550125", body=BODY)

    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.UNDELIVERED)
    event = MessageEvent.objects.get(message=message, to_value=Delivery.UNDELIVERED)
    assert event.detail["error_code"] == "2"


@pytest.mark.django_db(transaction=True)
def test_without_a_callback_the_carrier_uses_the_account_webhook_as_json(settings, carrier):
    carrier.webhook_format = "json"
    config = settings.FEEDBACK_APP["PROVIDERS"]["vonage"]
    # A callback Vonage would refuse: the backend leaves it out, the account webhook applies.
    config["CALLBACK"] = "https://" + "a" * 100 + ".example.com/"
    message = services.send(provider="vonage", to="+14155550123", body=BODY)

    assert carrier.messages[message.provider_message_id].callback is None
    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)


def test_timezone_is_utc_for_the_receipts_timestamp():
    # The receipt's message-timestamp is UTC; the webhook reads it as such.
    from feedback_app.webhooks.vonage import _timestamp

    assert _timestamp("2018-10-25 12:10:29") == datetime(2018, 10, 25, 12, 10, 29, tzinfo=UTC)
    assert _timestamp("25/10/2018") is None
    assert timezone.is_aware(_timestamp("2018-10-25 12:10:29"))
