"""The alibaba backend through the real Alibaba Cloud SDK, against AlibabaFake over HTTP: what it
sends, how it reports, how statuses arrive (SmsReport push, QueryMessage), and the carrier fake
end to end through a live server."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from django.urls import reverse

from feedback_app import polling, services
from feedback_app.conf import app_settings
from feedback_app.models import Message, MessageEvent
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.alibaba import STATUSES, _endpoint, delivery_status, parse_date
from feedback_app.states import Delivery, EventKind, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.alibaba_fake import (
    ACCESS_KEY_ID,
    ACCESS_KEY_SECRET,
    AlibabaFake,
    CarrierAlibabaFake,
    report_url_from_settings,
)
from feedback_app.testing.carrier import unreachable

pytestmark = pytest.mark.django_db

TO = "+6591234567"
BODY = "Your verification code is 482913"
TOKEN = "s3cret-push-token"  # noqa: S105 (a test credential)
PREFIX = "/alibaba"


@pytest.fixture(autouse=True)
def alibaba_environment(monkeypatch):
    """No credentials from the machine running the tests."""
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> AlibabaFake:
    return AlibabaFake(path_prefix=PREFIX)


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> AlibabaFake:
    shared_fake.reset()
    return shared_fake


def configure(settings, key: str = "alibaba", **config: Any) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: config},
    }


@pytest.fixture
def alibaba(settings, server):
    configure(
        settings,
        ACCESS_KEY_ID=ACCESS_KEY_ID,
        ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
        BASE_URL=server.url + PREFIX,
        FROM="Alicloud",
        WEBHOOK_TOKEN=TOKEN,
    )
    return get_provider("alibaba")


def send(**kwargs: Any) -> Message:
    return services.send(**{"provider": "alibaba", "to": TO, "body": BODY, **kwargs})


def push(client, reports: list[dict[str, Any]], token: str = TOKEN, key: str = "alibaba"):
    if key == "alibaba":
        path = reverse("feedback_app:webhook-alibaba")
    else:
        path = reverse("feedback_app:webhook-alibaba-key", kwargs={"provider": key})
    return client.post(
        f"{path}?token={token}", data=json.dumps(reports), content_type="application/json"
    )


# -- mappings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", Delivery.SENT),
        ("1", Delivery.DELIVERED),
        ("2", Delivery.UNDELIVERED),
        ("6", Delivery.UNDELIVERED),
        ("0", None),
        ("DELIVERED", None),
    ],
)
def test_alibaba_statuses_map_to_delivery_statuses(raw, expected):
    assert delivery_status(raw) == expected
    assert set(STATUSES.values()) <= set(Delivery.values)


def test_alibaba_dates_are_read_with_their_offset():
    parsed = parse_date("Thu, 25 Nov 2021 10:27:33 +0800")
    assert parsed is not None and parsed.utcoffset().total_seconds() == 8 * 3600
    assert (parsed.hour, parsed.minute) == (10, 27)
    assert parse_date("") is None
    assert parse_date("not a date") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("http://127.0.0.1:8000/alibaba/", ("http", "127.0.0.1:8000/alibaba")),
        ("http://127.0.0.1:8000", ("http", "127.0.0.1:8000")),
        ("dysmsapi.ap-southeast-1.aliyuncs.com", ("https", "dysmsapi.ap-southeast-1.aliyuncs.com")),
        ("ftp://example.com", ("", "")),
        (None, ("", "")),
    ],
)
def test_base_url_and_endpoint_become_the_sdks_protocol_and_endpoint(value, expected):
    assert _endpoint(value) == expected


# -- sending ---------------------------------------------------------------------------------


def test_send_is_send_message_to_globe_with_our_id_as_task_id(alibaba, fake):
    message = send()

    [request] = fake.requests
    assert request.action == "SendMessageToGlobe"
    assert request.headers["x-acs-version"] == "2018-05-01"
    assert request.headers["authorization"].startswith(
        f"ACS3-HMAC-SHA256 Credential={ACCESS_KEY_ID},"
    )
    # Digits with the dialing code, as Alibaba takes them; our public id comes back in reports.
    assert request.params == {
        "To": TO.removeprefix("+"),
        "Message": BODY,
        "From": "Alicloud",
        "TaskId": str(message.pk),
    }
    sent = fake.messages[message.provider_message_id]
    assert (sent.to, sent.body, sent.task_id) == ("6591234567", BODY, str(message.pk))
    assert message.delivery_status == Delivery.QUEUED
    assert message.sender == "Alicloud"
    assert TO.removeprefix("+") not in json.dumps(message.metadata)


def test_send_takes_a_sender_and_sdk_options(alibaba, fake):
    result = alibaba.send(
        to=TO,
        body=BODY,
        sender="Acme",
        channel="sms",
        message_id="m-1",
        validity_period=300,
    )

    params = fake.requests[-1].params
    assert (params["From"], params["ValidityPeriod"]) == ("Acme", "300")
    assert result.sender == "Acme"
    with pytest.raises(TypeError, match="unknown Alibaba options: body_type"):
        alibaba.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m", body_type="x")


def test_send_refuses_other_channels_without_a_request(alibaba, fake):
    with pytest.raises(PermanentError) as raised:
        alibaba.send(to=TO, body=BODY, sender=None, channel="whatsapp", message_id="m-1")

    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


def test_credentials_fall_back_to_the_sdks_environment_variables(
    settings, server, fake, monkeypatch
):
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
    configure(settings, BASE_URL=server.url + PREFIX, WEBHOOK_TOKEN=TOKEN)

    message = send()

    assert message.provider_message_id in fake.messages


def test_missing_credentials_fail_before_any_request(settings, server, fake):
    configure(settings, BASE_URL=server.url + PREFIX, ACCESS_KEY_ID=ACCESS_KEY_ID)

    with pytest.raises(PermanentError) as raised:
        get_provider("alibaba").send(to=TO, body=BODY, sender=None, channel="sms", message_id="m-1")

    assert raised.value.code == "missing_credentials"
    assert fake.requests == []


# -- errors ----------------------------------------------------------------------------------


def test_a_wrong_secret_is_refused_as_the_gateway_refuses_it(settings, server, fake):
    configure(settings, ACCESS_KEY_ID=ACCESS_KEY_ID, ACCESS_KEY_SECRET="wrong", BASE_URL=server.url)

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "SignatureDoesNotMatch"
    assert fake.messages == {}


def test_an_unknown_access_key_is_refused(settings, server, fake):
    configure(settings, ACCESS_KEY_ID="LTAIunknown", ACCESS_KEY_SECRET="x", BASE_URL=server.url)

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "InvalidAccessKeyId.NotFound"


def test_the_fake_checks_the_path_it_is_served_under(settings, server, fake):
    # Signed for "/" but sent to "/elsewhere/": the canonical request differs.
    configure(
        settings,
        ACCESS_KEY_ID=ACCESS_KEY_ID,
        ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
        BASE_URL=server.url + "/elsewhere",
    )

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "SignatureDoesNotMatch"


def test_the_fake_refuses_a_replayed_signed_request(alibaba, fake, server):
    import requests

    send()
    original = fake.requests[-1]
    headers = {k: v for k, v in original.headers.items() if k not in {"content-length"}}

    answer = requests.post(
        f"{server.url}{PREFIX}/", params=original.params, headers=headers, timeout=5
    )

    assert answer.status_code == 400
    assert answer.json()["Code"] == "SignatureNonceUsed"
    assert len(fake.messages) == 1


def test_a_chinese_mainland_number_is_refused_in_the_response_code(alibaba, fake):
    with pytest.raises(PermanentError) as raised:
        send(to="+8613800138000")

    assert raised.value.code == "COUNTRY_RESTRICTED"
    assert "8613800138000" not in str(raised.value)


@pytest.mark.parametrize(
    ("code", "side"),
    [
        ("SYSTEM_ERROR", RetryableError),
        ("BUSINESS_LIMIT_CONTROL", RetryableError),
        ("MOBILE_NUMBER_ILLEGAL", PermanentError),
        ("INVALID_SENDERID", PermanentError),
        ("AMOUNT_NOT_ENOUGH", PermanentError),
        ("Throttling.Api", RetryableError),
        ("InternalError", RetryableError),
        ("InvalidTimeStamp.Expired", PermanentError),
        ("Forbidden.RAM", PermanentError),
    ],
)
def test_alibaba_codes_land_on_their_side(alibaba, fake, code, side):
    fake.fail_next(1, code)

    with pytest.raises(side) as raised:
        alibaba.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m-1")

    assert raised.value.code == code


def test_an_error_quoting_the_recipient_as_alibaba_writes_it_masks_it(alibaba, fake):
    fake.fail_next(1, "MOBILE_NUMBER_ILLEGAL", "Number 6591234567 is not valid")

    with pytest.raises(PermanentError) as raised:
        alibaba.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m-1")

    assert "6591234567" not in str(raised.value)
    assert "4567 is not valid" in raised.value.message


def test_a_refused_connection_is_retryable(settings):
    configure(
        settings,
        ACCESS_KEY_ID=ACCESS_KEY_ID,
        ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
        BASE_URL="http://127.0.0.1:9",
    )

    with pytest.raises(RetryableError):
        get_provider("alibaba").send(to=TO, body=BODY, sender=None, channel="sms", message_id="m-1")


# -- conversions -----------------------------------------------------------------------------


def test_confirm_reports_delivered_true_without_a_conversion_time(
    alibaba, fake, django_capture_on_commit_callbacks
):
    message = send()

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    [conversion] = fake.conversions
    assert (conversion.message_id, conversion.delivered) == (message.provider_message_id, "true")
    # Alibaba takes the time of the call: ours could be ahead of its clock.
    assert conversion.conversion_time is None
    assert fake.requests[-1].action == "SmsConversion"


def test_an_expired_message_reports_false_then_a_late_conversion_true(
    alibaba, fake, clock, django_capture_on_commit_callbacks
):
    message = send()
    clock.advance(seconds=app_settings.FEEDBACK_WINDOWS["*"] + 1)

    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue() == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    assert [(c.message_id, c.delivered) for c in fake.conversions] == [
        (message.provider_message_id, "false"),
        (message.provider_message_id, "true"),
    ]


def test_a_message_superseded_by_a_confirmed_resend_reports_delivered_false(
    alibaba, fake, django_capture_on_commit_callbacks
):
    first = send(verification="login-42")
    resend = send(verification="login-42")

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(resend)

    first.refresh_from_db()
    assert first.feedback == Feedback.SUPERSEDED
    assert sorted((c.message_id, c.delivered) for c in fake.conversions) == sorted(
        [(resend.provider_message_id, "true"), (first.provider_message_id, "false")]
    )


def test_an_unknown_message_id_is_a_permanent_conversion_error(alibaba, fake):
    with pytest.raises(PermanentError) as raised:
        alibaba.report_feedback(
            provider_message_id="100000000000000000", outcome="confirmed", idempotency_key="k"
        )

    assert raised.value.code == "DATA_NOT_EXIST"


# -- statuses: QueryMessage ------------------------------------------------------------------


def test_fetch_status_asks_query_message(alibaba, fake):
    message = send()

    update = alibaba.fetch_status(message)
    assert (update.delivery_status, update.provider_status) == (Delivery.SENT, "3")

    fake.set_status(message.provider_message_id, "2", "UNDELIV", "Undelivered")
    update = alibaba.fetch_status(message)

    assert (update.delivery_status, update.provider_status) == (Delivery.UNDELIVERED, "2")
    assert update.detail == {"error_code": "UNDELIV"}
    assert update.at is not None
    assert fake.requests[-1].action == "QueryMessage"


def test_a_message_whose_push_was_lost_is_synced(alibaba, fake, clock):
    message = send()
    fake.set_status(message.provider_message_id, "1")
    clock.advance(seconds=app_settings.SYNC_STALE_AFTER + 1)

    result = polling.sync_statuses()

    message.refresh_from_db()
    assert (result.checked, result.changed) == (1, 1)
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "1")


# -- statuses: the SmsReport push ------------------------------------------------------------


def test_a_batch_push_applies_every_report_and_answers_code_0(alibaba, fake, client):
    delivered, failed = send(), send(to="+6591234568")
    reports = fake.receipt(delivered.provider_message_id, "1") + fake.receipt(
        failed.provider_message_id, "2", "UNDELIV", "The number is off"
    )

    response = push(client, reports)

    assert response.status_code == 200
    assert response.json()["code"] == 0
    delivered.refresh_from_db()
    failed.refresh_from_db()
    assert delivered.delivery_status == Delivery.DELIVERED
    assert failed.delivery_status == Delivery.UNDELIVERED
    event = MessageEvent.objects.get(
        message=failed, kind=EventKind.DELIVERY, to_value=Delivery.UNDELIVERED
    )
    assert event.detail["error_code"] == "UNDELIV"
    assert "6591234568" not in json.dumps(event.detail)


def test_a_push_without_the_token_is_refused_and_changes_nothing(alibaba, fake, client):
    message = send()
    reports = fake.receipt(message.provider_message_id, "1")

    assert push(client, reports, token="").status_code == 403
    assert push(client, reports, token=TOKEN + "x").status_code == 403

    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_without_a_webhook_token_every_push_is_refused(settings, server, fake, client):
    configure(
        settings,
        ACCESS_KEY_ID=ACCESS_KEY_ID,
        ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
        BASE_URL=server.url + PREFIX,
    )
    message = send()

    response = push(client, fake.receipt(message.provider_message_id, "1"), token="")

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_report_finds_its_message_by_task_id(alibaba, fake, client):
    message = send()
    [report] = fake.receipt(message.provider_message_id, "1")
    report["MessageId"] = "999999999999999999"  # a MessageId the app has not recorded

    assert push(client, [report]).status_code == 200

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


@pytest.mark.parametrize(
    "body", [b"not json", b'{"To": "1"}', b'[{"Status": "1"}]', b"[1, 2]", b'"text"']
)
def test_a_push_that_is_not_an_sms_report_is_a_400(alibaba, client, body):
    path = reverse("feedback_app:webhook-alibaba")
    response = client.post(f"{path}?token={TOKEN}", data=body, content_type="application/json")

    assert response.status_code == 400


def test_an_unknown_status_is_acknowledged_and_ignored(alibaba, fake, client):
    message = send()
    [report] = fake.receipt(message.provider_message_id, "1")
    report["Status"] = "9"

    assert push(client, [report]).status_code == 200

    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_another_key_with_the_backend_has_its_own_webhook_and_token(settings, server, fake, client):
    configure(
        settings,
        key="alibaba_eu",
        BACKEND="feedback_app.providers.alibaba.AlibabaProvider",
        ACCESS_KEY_ID=ACCESS_KEY_ID,
        ACCESS_KEY_SECRET=ACCESS_KEY_SECRET,
        BASE_URL=server.url + PREFIX,
        WEBHOOK_TOKEN="eu-token",
    )
    message = services.send(provider="alibaba_eu", to=TO, body=BODY)
    reports = fake.receipt(message.provider_message_id, "1")

    assert push(client, reports, key="alibaba_eu").status_code == 403
    assert push(client, reports, token="eu-token", key="alibaba_eu").status_code == 200

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


# -- checks ----------------------------------------------------------------------------------


def test_check_config_flags_an_unusable_base_url():
    from feedback_app.providers.alibaba import AlibabaProvider

    ids = {m.id for m in AlibabaProvider.check_config("alibaba", {"BASE_URL": "ftp://x"})}

    assert {"feedback_app.E160", "feedback_app.W160", "feedback_app.W161"} <= ids
    assert "feedback_app.W162" in ids


def test_the_report_url_carries_the_token(settings):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PUBLIC_URL": "https://example.com",
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], "alibaba": {"WEBHOOK_TOKEN": "a b"}},
    }

    assert (
        report_url_from_settings() == "https://example.com/feedback/webhooks/alibaba/?token=a%20b"
    )


# -- the carrier fake, end to end ------------------------------------------------------------


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.django_db(transaction=True)
def test_the_carrier_fake_pushes_reports_to_the_live_webhook(settings, live_server):
    carrier = CarrierAlibabaFake(path_prefix=PREFIX, delays=(0.05, 0.1), undelivered_rate=0.1)
    off, on = "+6591230003", "+6591230001"
    assert unreachable(off, 0.1) and not unreachable(on, 0.1)
    with FakeServer(carrier) as server:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PUBLIC_URL": live_server.url,
            "PROVIDERS": {
                **settings.FEEDBACK_APP["PROVIDERS"],
                "alibaba": {
                    "ACCESS_KEY_ID": ACCESS_KEY_ID,
                    "ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
                    "BASE_URL": server.url + PREFIX,
                    "WEBHOOK_TOKEN": TOKEN,
                },
            },
        }
        delivered = send(to=on)
        undelivered = send(to=off)

        wait_for(lambda: Message.objects.get(pk=delivered.pk).delivery_status == "delivered")
        wait_for(lambda: Message.objects.get(pk=undelivered.pk).delivery_status == "undelivered")
        assert carrier.messages[undelivered.provider_message_id].error_code == "UNDELIV"

        assert services.confirm(delivered) is True
        wait_for(lambda: len(carrier.conversions) == 1)
        assert carrier.conversions[0].message_id == delivered.provider_message_id
        assert carrier.conversions[0].delivered == "true"
