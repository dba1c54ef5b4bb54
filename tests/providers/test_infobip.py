"""The infobip backend through the real infobip SDK, against InfobipFake over HTTP; its webhook;
and CarrierInfobipFake end to end through a live server."""

from __future__ import annotations

import base64
import json
import socket
import time
from typing import Any

import pytest
from django.core.management import call_command

from feedback_app import polling, services
from feedback_app.conf import app_settings
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.infobip import (
    DEFAULT_TIMEOUT,
    GROUPS,
    STATUSES,
    InfobipProvider,
    delivery_status,
)
from feedback_app.states import CallState, Delivery, EventKind, Feedback, Source
from feedback_app.testing import FakeServer
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.infobip_fake import (
    API_KEY,
    UNKNOWN_SUBSCRIBER,
    CarrierInfobipFake,
    InfobipFake,
    ReportTarget,
)

pytestmark = pytest.mark.django_db

TO = "+12015550123"
BODY = "Your verification code is 482913"
BASIC_AUTH = "infobip:report-password"
PUBLIC_URL = "https://otp.example.com"


@pytest.fixture(autouse=True)
def infobip_environment(monkeypatch):
    """No credentials from the machine running the tests."""
    for name in ("IB_API_KEY", "IB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> InfobipFake:
    return InfobipFake(base_path="/infobip")


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> InfobipFake:
    shared_fake.reset()
    return shared_fake


def configure(settings, key: str = "infobip", **infobip: Any) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: infobip},
    }


def base(server) -> dict[str, Any]:
    return {
        "API_KEY": API_KEY,
        "BASE_URL": server.url + "/infobip",
        "FROM": "InfoSMS",
        "WEBHOOK_BASIC_AUTH": BASIC_AUTH,
    }


@pytest.fixture
def infobip(settings, server) -> InfobipProvider:
    configure(settings, **base(server))
    return get_provider("infobip")


def send(**kwargs: Any) -> Message:
    return services.send(**{"provider": "infobip", "to": TO, "body": BODY, **kwargs})


def sends(fake: InfobipFake) -> list:
    return fake.requests_to("POST", "/sms/3/messages")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def basic(credentials: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


# -- sending ---------------------------------------------------------------------------------------


def test_send_posts_the_v3_request_with_conversion_tracking_and_our_delivery_url(
    settings, infobip, fake
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": PUBLIC_URL + "/"}

    message = send()

    [request] = sends(fake)
    assert request.path == "/sms/3/messages"  # under the BASE_URL's /infobip
    assert request.auth_scheme == "App"
    assert request.json == {
        "messages": [
            {
                "sender": "InfoSMS",
                # Infobip's international format has no "+"; the messageId is our public id.
                "destinations": [{"to": TO[1:], "messageId": str(message.pk)}],
                "content": {"text": BODY},
                "webhooks": {
                    "delivery": {"url": PUBLIC_URL + "/feedback/webhooks/infobip/"},
                    "contentType": "application/json",
                },
            }
        ],
        "options": {
            "includeSmsCountInResponse": False,
            "conversionTracking": {
                "useConversionTracking": True,
                "conversionTrackingName": "ONE_TIME_PIN",
            },
        },
    }
    assert message.provider_message_id == str(message.pk)
    assert (message.delivery_status, message.provider_status) == (
        Delivery.QUEUED,
        "PENDING_ACCEPTED",
    )
    assert (message.sender, message.feedback) == ("InfoSMS", Feedback.PENDING)
    assert message.metadata["bulk_id"] == fake.messages[message.provider_message_id].bulk_id
    assert message.metadata["message_count"] == 1
    assert TO[1:] not in json.dumps(message.metadata) and BODY not in json.dumps(message.metadata)


def test_the_delivery_url_setting_wins_over_public_url(settings, server, fake):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": PUBLIC_URL}
    configure(settings, **base(server), DELIVERY_URL="https://hooks.example.net/ib?tenant=7")

    message = send()

    assert fake.messages[message.provider_message_id].delivery_url == (
        "https://hooks.example.net/ib?tenant=7"
    )


def test_delivery_url_false_leaves_reports_to_the_accounts_subscription(settings, server, fake):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": PUBLIC_URL}
    configure(settings, **base(server), DELIVERY_URL=False)

    send()

    assert "webhooks" not in sends(fake)[0].json["messages"][0]


def test_without_public_url_or_setting_no_delivery_url_is_sent(infobip, fake):
    send()

    assert "webhooks" not in sends(fake)[0].json["messages"][0]


def test_another_key_with_the_infobip_backend_gets_its_own_webhook_url(settings, server, fake):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": PUBLIC_URL}
    configure(
        settings,
        "infobip_eu",
        BACKEND="feedback_app.providers.infobip.InfobipProvider",
        **base(server),
    )

    message = send(provider="infobip_eu")

    url = fake.messages[message.provider_message_id].delivery_url
    assert url == PUBLIC_URL + "/feedback/webhooks/infobip/infobip_eu/"


def test_the_tracking_name_the_options_and_the_sender_argument(settings, server, fake):
    configure(settings, **base(server), CONVERSION_TRACKING_NAME="LOGIN_OTP")
    provider = get_provider("infobip")

    result = provider.send(
        to=TO,
        body=BODY,
        sender="Acme",
        channel="sms",
        message_id="our-id-1",
        validity_period=5,
        campaign_reference_id="otp-login",
        callback_data="tenant-7",
    )

    sent = fake.messages["our-id-1"]
    assert (sent.sender, sent.tracking, sent.tracking_name) == ("Acme", True, "LOGIN_OTP")
    assert sent.options == {
        "validityPeriod": {"amount": 5, "timeUnit": "MINUTES"},
        "campaignReferenceId": "otp-login",
    }
    assert sent.callback_data == "tenant-7"
    assert (result.provider_message_id, result.sender) == ("our-id-1", "Acme")


def test_unknown_options_and_other_channels_are_refused_before_any_request(infobip, fake):
    with pytest.raises(TypeError, match="flash"):
        infobip.send(to=TO, body=BODY, sender=None, channel="sms", message_id="x", flash=True)
    with pytest.raises(PermanentError) as raised:
        infobip.send(to=TO, body=BODY, sender=None, channel="whatsapp", message_id="x")

    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


def test_credentials_come_from_the_environment_too(settings, server, fake, monkeypatch):
    monkeypatch.setenv("IB_API_KEY", API_KEY)
    monkeypatch.setenv("IB_BASE_URL", server.url + "/infobip")
    configure(settings, WEBHOOK_BASIC_AUTH=BASIC_AUTH)

    message = send()

    assert message.provider_message_id in fake.messages


def test_without_credentials_nothing_is_sent(settings, server, fake):
    configure(settings, BASE_URL=server.url + "/infobip")

    with pytest.raises(PermanentError) as raised:
        get_provider("infobip").send(to=TO, body=BODY, sender=None, channel="sms", message_id="x")

    assert raised.value.code == "missing_credentials"
    assert fake.requests == []


def test_a_plain_http_base_url_elsewhere_than_localhost_is_refused(settings):
    """The SDK allows http:// only for localhost and 127.0.0.1 (its Configuration refuses it)."""
    configure(settings, API_KEY=API_KEY, BASE_URL="http://api.example.com")

    with pytest.raises(PermanentError) as raised:
        get_provider("infobip").send(to=TO, body=BODY, sender=None, channel="sms", message_id="x")

    assert raised.value.code == "invalid_base_url"


def test_the_client_is_built_once_with_the_timeout_setting(settings, server, infobip, fake):
    client = infobip.api_client
    send()
    send()

    assert get_provider("infobip").api_client is client
    assert infobip.timeout == DEFAULT_TIMEOUT
    configure(settings, **base(server), TIMEOUT=3)
    assert get_provider("infobip").timeout == 3.0


def test_an_answer_without_the_message_is_retryable(infobip, fake, monkeypatch):
    """Nothing says the send was taken: the outbox tries again, within its limits."""
    monkeypatch.setattr(fake, "_send", lambda body: {"bulkId": "b", "messages": []})

    with pytest.raises(RetryableError) as raised:
        infobip.send(to=TO, body=BODY, sender=None, channel="sms", message_id="x")

    assert raised.value.code == "empty_answer"


# -- reporting conversions -------------------------------------------------------------------------


def test_a_confirmation_logs_the_conversion_end_tag_through_the_sdk_client(
    infobip, fake, django_capture_on_commit_callbacks
):
    message = send()

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    [request] = fake.requests_to("POST", f"/ct/1/log/end/{message.provider_message_id}")
    assert (request.auth_scheme, request.json) == ("App", None)
    assert request.headers["accept"] == "application/json"
    assert [c.message_id for c in fake.conversions] == [message.provider_message_id]
    [call] = ProviderCall.objects.filter(message=message)
    assert call.state == CallState.SUCCEEDED


def test_failing_or_expiring_is_recorded_locally_only(infobip, fake):
    message = send()

    with pytest.raises(PermanentError) as raised:
        infobip.report_feedback(
            provider_message_id=message.provider_message_id, outcome="failed", idempotency_key="k"
        )

    assert raised.value.code == "unsupported_outcome"
    assert fake.conversions == []


def test_a_superseded_message_is_not_reported(infobip, fake):
    """Infobip has no "converted with another message": a resend's sibling stays unconverted."""
    message = send()

    assert infobip.superseded_outcome(message) is None


@pytest.mark.parametrize(
    ("status", "expected_code", "side"),
    [
        (429, "TOO_MANY_REQUESTS", RetryableError),
        (500, "GENERAL_ERROR", RetryableError),
        (401, "UNAUTHORIZED", PermanentError),
        (404, "NOT_FOUND", PermanentError),
    ],
)
def test_conversion_errors_in_the_older_shape_keep_infobips_code(
    infobip, fake, status, expected_code, side
):
    message = send()
    fake.fail_next(status=status, message=f"The number {TO} said no")

    with pytest.raises(side) as raised:
        infobip.report_feedback(
            provider_message_id=message.provider_message_id,
            outcome="confirmed",
            idempotency_key="k",
        )

    assert raised.value.code == expected_code
    assert TO not in str(raised.value) and "said no" in raised.value.message


def test_a_conversion_for_a_message_infobip_does_not_know_is_permanent(infobip, fake):
    with pytest.raises(PermanentError) as raised:
        infobip.report_feedback(
            provider_message_id="never-sent", outcome="confirmed", idempotency_key="k"
        )

    assert raised.value.code == "NOT_FOUND"


def test_a_wrong_api_key_is_a_permanent_e401(settings, server, fake):
    configure(settings, **{**base(server), "API_KEY": "not-the-key"})

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "E401"


def test_a_validation_error_names_the_violation_with_the_number_masked(infobip, fake):
    with pytest.raises(PermanentError) as raised:
        infobip.send(to="+1", body=BODY, sender=None, channel="sms", message_id="x")

    assert raised.value.code == "E400"
    assert "messages[0].destinations[0].to" in raised.value.message


def test_a_refused_connection_is_retryable(settings):
    configure(settings, API_KEY=API_KEY, BASE_URL=f"http://127.0.0.1:{closed_port()}/infobip")

    with pytest.raises(RetryableError):
        get_provider("infobip").send(to=TO, body=BODY, sender=None, channel="sms", message_id="x")


# -- statuses --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "group", "expected"),
    [
        ("PENDING_ACCEPTED", "PENDING", Delivery.QUEUED),
        ("PENDING_ENROUTE", "PENDING", Delivery.SENT),
        ("PENDING_WAITING_DELIVERY", "PENDING", Delivery.SENT),
        ("DELIVERED_TO_OPERATOR", "DELIVERED", Delivery.SENT),
        ("DELIVERED_TO_HANDSET", "DELIVERED", Delivery.DELIVERED),
        ("UNDELIVERABLE_NOT_DELIVERED", "UNDELIVERABLE", Delivery.UNDELIVERED),
        ("EXPIRED_EXPIRED", "EXPIRED", Delivery.UNDELIVERED),
        ("EXPIRED_DLR_UNKNOWN", "EXPIRED", Delivery.UNKNOWN),
        # Names not listed take their group's status.
        ("REJECTED_NETWORK", "REJECTED", Delivery.REJECTED),
        ("SOME_NEW_PENDING_STATUS", "PENDING", Delivery.QUEUED),
        ("SOMETHING", "NEW_GROUP", None),
    ],
)
def test_status_mapping(name, group, expected):
    assert delivery_status(name, group) == expected


def test_every_mapped_status_is_a_delivery_status():
    assert set(STATUSES.values()) | set(GROUPS.values()) <= set(Delivery.values)


def test_fetch_status_reads_the_message_log(infobip, fake):
    message = send()
    fake.set_status(message.provider_message_id, "UNDELIVERABLE_NOT_DELIVERED", UNKNOWN_SUBSCRIBER)

    update = infobip.fetch_status(message)

    assert (update.delivery_status, update.provider_status) == (
        Delivery.UNDELIVERED,
        "UNDELIVERABLE_NOT_DELIVERED",
    )
    assert update.detail == {
        "error_code": "1",
        "error_name": "EC_UNKNOWN_SUBSCRIBER",
        "error_group": "HANDSET_ERRORS",
        "error_permanent": True,
    }
    [request] = fake.requests_to("GET", "/sms/3/logs")
    assert request.query == {"messageId": [message.provider_message_id]}


def test_fetch_status_of_a_message_without_a_log_is_none(infobip, fake):
    assert infobip.fetch_status(Message(provider="infobip", provider_message_id="gone")) is None


def test_a_message_whose_report_was_lost_is_synced(infobip, fake, clock):
    message = send()
    fake.set_status(message.provider_message_id, "DELIVERED_TO_HANDSET")
    clock.advance(seconds=app_settings.SYNC_STALE_AFTER + 1)

    polling.sync_statuses()

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (
        Delivery.DELIVERED,
        "DELIVERED_TO_HANDSET",
    )


# -- the webhook -----------------------------------------------------------------------------------


def post_report(client, body: Any, credentials: str | None = BASIC_AUTH, path: str = ""):
    headers = basic(credentials) if credentials else {}
    return client.post(
        path or "/feedback/webhooks/infobip/",
        data=json.dumps(body) if not isinstance(body, str) else body,
        content_type="application/json",
        headers=headers,
    )


def test_a_report_batch_applies_each_result_and_keeps_the_error_but_not_the_number(
    infobip, fake, client
):
    first, second = send(), send(to="+12015550124")
    body = fake.receipt(first.provider_message_id, "DELIVERED_TO_HANDSET")
    body["results"] += fake.receipt(
        second.provider_message_id, "UNDELIVERABLE_NOT_DELIVERED", UNKNOWN_SUBSCRIBER
    )["results"]

    assert post_report(client, body).status_code == 200

    first.refresh_from_db()
    second.refresh_from_db()
    assert first.delivery_status == Delivery.DELIVERED
    assert second.delivery_status == Delivery.UNDELIVERED
    event = MessageEvent.objects.get(
        message=second, kind=EventKind.DELIVERY, to_value=Delivery.UNDELIVERED
    )
    assert event.source == Source.WEBHOOK
    assert event.detail["error_name"] == "EC_UNKNOWN_SUBSCRIBER"
    assert event.detail["mcc_mnc"] == "22801"
    assert "2015550124" not in json.dumps(event.detail)


def test_an_entry_of_an_unknown_shape_does_not_cost_the_others(infobip, fake, client):
    message = send()
    body = fake.receipt(message.provider_message_id, "DELIVERED_TO_HANDSET")
    strange = json.loads(json.dumps(body["results"][0]))
    strange["status"]["groupName"] = "A_NEW_GROUP"
    body["results"].insert(0, strange)

    assert post_report(client, body).status_code == 200

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


@pytest.mark.parametrize("body", ["not json", [], {"results": "nope"}, {"messages": []}])
def test_a_body_that_is_no_report_is_a_400(infobip, client, body):
    assert post_report(client, body).status_code == 400


def test_wrong_credentials_are_challenged_and_change_nothing(infobip, fake, client):
    message = send()
    body = fake.receipt(message.provider_message_id, "DELIVERED_TO_HANDSET")

    wrong = post_report(client, body, credentials="infobip:guess")
    missing = post_report(client, body, credentials=None)

    assert (wrong.status_code, missing.status_code) == (401, 401)
    assert wrong["WWW-Authenticate"].startswith("Basic")
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_without_webhook_basic_auth_every_report_is_refused(settings, server, fake, client):
    configure(settings, API_KEY=API_KEY, BASE_URL=server.url + "/infobip")
    message = send()
    body = fake.receipt(message.provider_message_id, "DELIVERED_TO_HANDSET")

    assert post_report(client, body).status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_the_webhook_of_a_key_that_is_not_infobip_is_a_404(infobip, client):
    response = post_report(client, {"results": []}, path="/feedback/webhooks/infobip/locmem/")

    assert response.status_code == 404


# -- settings --------------------------------------------------------------------------------------


def check_ids(config: dict[str, Any]) -> set[str]:
    return {message.id for message in InfobipProvider.check_config("infobip", config)}


def test_check_config_catches_malformed_settings(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": PUBLIC_URL}
    good = {"API_KEY": "k", "BASE_URL": "https://x.api.infobip.com", "WEBHOOK_BASIC_AUTH": "a:b"}

    assert check_ids(good) == set()
    assert check_ids({**good, "WEBHOOK_BASIC_AUTH": "no-colon"}) == {"feedback_app.E140"}
    assert check_ids({**good, "TIMEOUT": 0}) == {"feedback_app.E141"}
    assert check_ids({**good, "TIMEOUT": "10"}) == {"feedback_app.E141"}


def test_check_config_warns_when_messages_name_no_delivery_url(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": None}
    good = {"API_KEY": "k", "BASE_URL": "https://x.api.infobip.com", "WEBHOOK_BASIC_AUTH": "a:b"}

    assert check_ids(good) == {"feedback_app.W143"}
    assert check_ids({**good, "DELIVERY_URL": False}) == set()
    assert check_ids({**good, "DELIVERY_URL": "https://hooks.example.net/ib"}) == set()


def test_manage_check_runs_the_infobip_checks(settings, capsys):
    configure(settings, BASE_URL="https://x.api.infobip.com", WEBHOOK_BASIC_AUTH="a:b")

    call_command("check")

    assert "feedback_app.W140" in capsys.readouterr().err


# -- the carrier fake, end to end ------------------------------------------------------------------


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.fixture
def carrier(settings, live_server):
    fake = CarrierInfobipFake(base_path="/infobip", delays=(0.05, 0.1), undelivered_rate=0.0)
    with FakeServer(fake) as server:
        settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": live_server.url}
        configure(settings, **base(server))
        fake.server = server
        yield fake


@pytest.mark.django_db(transaction=True)
def test_carrier_reports_delivery_with_basic_auth_and_the_conversion_is_logged(carrier):
    message = send()

    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    # The fake records the answer once the webhook's response is back.
    wait_for(lambda: carrier.answers == [200])
    assert carrier.messages[message.provider_message_id].status == "DELIVERED_TO_HANDSET"
    assert services.confirm(message) is True
    assert [c.message_id for c in carrier.conversions] == [message.provider_message_id]


@pytest.mark.django_db(transaction=True)
def test_carrier_undelivers_the_same_numbers_every_time(carrier):
    carrier.undelivered_rate = 0.1
    assert unreachable("+14155550125", 0.1) and not unreachable("+14155550123", 0.1)
    off = send(to="+14155550125")
    on = send(to="+14155550123")

    wait_for(lambda: Message.objects.get(pk=off.pk).delivery_status == Delivery.UNDELIVERED)
    wait_for(lambda: Message.objects.get(pk=on.pk).delivery_status == Delivery.DELIVERED)
    off.refresh_from_db()
    assert off.provider_status == "UNDELIVERABLE_NOT_DELIVERED"
    event = MessageEvent.objects.get(message=off, to_value=Delivery.UNDELIVERED)
    assert event.detail["error_name"] == "EC_UNKNOWN_SUBSCRIBER"


@pytest.mark.django_db(transaction=True)
def test_carrier_reports_to_the_subscription_when_messages_name_no_url(settings, carrier):
    configure(settings, **base(carrier.server), DELIVERY_URL=False)
    message = send()

    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    assert carrier.messages[message.provider_message_id].delivery_url is None


@pytest.mark.django_db(transaction=True)
def test_carrier_reports_refused_without_the_subscriptions_credentials(settings, carrier):
    carrier.target = lambda: ReportTarget(url=None, basic_auth="infobip:wrong")
    message = send()

    wait_for(lambda: carrier.answers == [401])
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED
