"""The sinch backend through the real sinch SDK, against SinchFake over HTTP: what is specific to
Sinch (its parameters, status vocabulary, delivery feedback for a whole batch, callback
authentication, OAuth) beyond the contract (test_sinch_contract.py)."""

from __future__ import annotations

import base64
import json
import logging
import time
from typing import Any

import pytest
from django.urls import reverse

from feedback_app import polling, services
from feedback_app.conf import app_settings
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.sinch import STATUSES, SinchProvider, delivery_status
from feedback_app.states import Delivery, EventKind, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.sinch_fake import (
    API_TOKEN,
    KEY_ID,
    KEY_SECRET,
    PROJECT_ID,
    SERVICE_PLAN_ID,
    CarrierSinchFake,
    SinchFake,
    sign_callback,
)

pytestmark = pytest.mark.django_db

FROM = "+12065550100"
TO = "+12015550123"
BODY = "Your verification code is 482913"
SECRET = "test-webhook-secret"  # noqa: S105 (a test credential)
PUBLIC_URL = "https://otp.example.com"


@pytest.fixture(autouse=True)
def sinch_environment(monkeypatch):
    """No credentials or region from the machine running the tests."""
    for name in (
        "SINCH_SERVICE_PLAN_ID",
        "SINCH_API_TOKEN",
        "SINCH_PROJECT_ID",
        "SINCH_KEY_ID",
        "SINCH_KEY_SECRET",
        "SINCH_SMS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> SinchFake:
    return SinchFake()


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> SinchFake:
    shared_fake.reset()
    shared_fake.default_originator = False
    return shared_fake


def configure(settings, key: str = "sinch", public_url: str | None = None, **sinch: Any) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PUBLIC_URL": public_url,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: sinch},
    }


def plan_settings(server: FakeServer, **overrides: Any) -> dict[str, Any]:
    return {
        "SERVICE_PLAN_ID": SERVICE_PLAN_ID,
        "API_TOKEN": API_TOKEN,
        "BASE_URL": server.url + "/sinch",
        "FROM": FROM,
        "WEBHOOK_SECRET": SECRET,
        **overrides,
    }


@pytest.fixture
def sinch(settings, server, fake) -> SinchProvider:
    configure(settings, public_url=PUBLIC_URL, **plan_settings(server))
    return get_provider("sinch")


def send(**kwargs: Any) -> Message:
    return services.send(**{"provider": "sinch", "to": TO, "body": BODY, **kwargs})


def batches_sent(fake: SinchFake) -> list[Any]:
    return [r for r in fake.requests if r.method == "POST" and r.path.endswith("/batches")]


def feedback_posts(fake: SinchFake) -> list[Any]:
    return [r for r in fake.requests if r.path.endswith("/delivery_feedback")]


# -- sending ---------------------------------------------------------------------------------------


def test_a_send_is_a_batch_of_one_with_feedback_enabled_our_id_and_our_webhook(sinch, fake):
    message = send()

    [request] = batches_sent(fake)
    assert request.path == f"/sinch/xms/v1/{SERVICE_PLAN_ID}/batches"
    assert request.auth == "bearer"
    assert request.body == {
        "to": [TO],
        "from": FROM,
        "body": BODY,
        "type": "mt_text",
        "delivery_report": "per_recipient",
        "callback_url": PUBLIC_URL + reverse("feedback_app:webhook-sinch"),
        "client_reference": str(message.pk),
        "feedback_enabled": True,
    }
    batch = fake.batches[message.provider_message_id]
    assert (batch.feedback_enabled, batch.client_reference) == (True, str(message.pk))
    assert (message.delivery_status, message.sender) == (Delivery.QUEUED, FROM)


def test_the_callback_url_setting_wins_over_public_url(settings, server, fake):
    configure(
        settings,
        public_url=PUBLIC_URL,
        **plan_settings(server, CALLBACK_URL="https://hooks.example.com/sinch"),
    )
    send()
    assert batches_sent(fake)[0].body["callback_url"] == "https://hooks.example.com/sinch"


def test_without_public_url_or_setting_no_callback_url_is_sent(settings, server, fake):
    # Sinch then uses the service plan's default callback URL, if one is set.
    configure(settings, **plan_settings(server))
    send()
    assert "callback_url" not in batches_sent(fake)[0].body


def test_another_key_with_the_sinch_backend_gets_its_own_webhook_url(settings, server, fake):
    configure(
        settings,
        key="sinch_eu",
        public_url=PUBLIC_URL,
        BACKEND="feedback_app.providers.sinch.SinchProvider",
        **plan_settings(server),
    )
    send(provider="sinch_eu")
    path = reverse("feedback_app:webhook-sinch-key", kwargs={"provider": "sinch_eu"})
    assert batches_sent(fake)[0].body["callback_url"] == PUBLIC_URL + path


def test_the_sender_argument_wins_over_from(sinch, fake):
    message = send(sender="OTPService")
    assert batches_sent(fake)[0].body["from"] == "OTPService"
    assert message.sender == "OTPService"


def test_without_a_sender_from_is_left_to_the_default_originator(settings, server, fake):
    configure(settings, **plan_settings(server, FROM=None))
    with pytest.raises(PermanentError) as refused:
        get_provider("sinch").send(to=TO, body=BODY, sender=None, channel="sms", message_id="m1")
    # Without a default originator on the service plan, Sinch refuses the batch.
    assert refused.value.code == "syntax_constraint_violation"
    assert "from" not in batches_sent(fake)[0].body

    fake.default_originator = True
    result = get_provider("sinch").send(
        to=TO, body=BODY, sender=None, channel="sms", message_id="m2"
    )
    assert result.provider_message_id in fake.batches


def test_the_delivery_report_setting_and_options_pass_through(settings, server, fake):
    configure(settings, **plan_settings(server, DELIVERY_REPORT="per_recipient_final"))
    send(flash_message=False, max_number_of_message_parts=1, expire_at="2030-01-01T00:00:00Z")

    body = batches_sent(fake)[0].body
    assert body["delivery_report"] == "per_recipient_final"
    assert (body["flash_message"], body["max_number_of_message_parts"]) == (False, 1)
    assert body["expire_at"].startswith("2030-01-01T00:00:00")


def test_an_unknown_option_is_a_programming_error(sinch, fake):
    with pytest.raises(TypeError, match="parameters"):
        sinch.send(to=TO, body=BODY, sender=None, channel="sms", message_id="m", parameters={})
    assert fake.requests == []


def test_a_channel_sinch_sms_does_not_serve_is_refused_before_any_request(sinch, fake):
    with pytest.raises(PermanentError) as refused:
        sinch.send(to=TO, body=BODY, sender=None, channel="whatsapp", message_id="m")
    assert refused.value.code == "unsupported_channel"
    assert fake.requests == []


def test_an_invalid_number_is_permanent_with_sinchs_code_and_no_clear_number(sinch, fake):
    with pytest.raises(PermanentError) as refused:
        sinch.send(to="12", body=BODY, sender=None, channel="sms", message_id="m")
    assert refused.value.code == "syntax_invalid_parameter_format"


def test_neither_the_body_nor_the_number_is_stored(sinch, fake):
    message = send()
    fake.report(message.provider_message_id, "Delivered")  # the fake keeps them, as Sinch does

    stored = repr(Message.objects.filter(pk=message.pk).values().get())
    stored += repr(list(MessageEvent.objects.filter(message=message).values()))
    assert BODY not in stored
    assert TO not in stored


def test_neither_credentials_nor_the_body_nor_the_number_are_logged(sinch, fake, caplog):
    # The SDK logs each request's headers and body at DEBUG on the logger it is given.
    caplog.set_level(logging.DEBUG)
    message = send()
    sinch.report_feedback(
        provider_message_id=message.provider_message_id, outcome="confirmed", idempotency_key="k"
    )

    logged = caplog.text + repr([record.args for record in caplog.records])
    assert API_TOKEN not in logged
    assert BODY not in logged
    assert TO not in logged


# -- statuses --------------------------------------------------------------------------------------


def test_every_documented_status_is_mapped():
    documented = {"Queued", "Dispatched", "Aborted", "Cancelled", "Rejected", "Deleted"}
    documented |= {"Delivered", "Failed", "Expired", "Unknown"}
    assert set(STATUSES) == documented


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("Queued", Delivery.QUEUED),
        ("Dispatched", Delivery.SENT),
        ("Delivered", Delivery.DELIVERED),
        ("Unknown", Delivery.UNKNOWN),
        ("Aborted", Delivery.FAILED),
        ("Expired", Delivery.FAILED),
        ("Rejected", Delivery.REJECTED),
        ("Cancelled", Delivery.REJECTED),
        ("Failed", Delivery.UNDELIVERED),
        ("Deleted", Delivery.UNDELIVERED),
        # The SDK's filter enum spells them in capitals.
        ("DELIVERED", Delivery.DELIVERED),
        ("Opened", None),
        ("", None),
    ],
)
def test_sinch_statuses_map_to_the_delivery_vocabulary(raw, status):
    assert delivery_status(raw) == status


# -- conversion feedback ---------------------------------------------------------------------------


def test_a_confirmation_posts_feedback_for_the_whole_batch_once(
    sinch, fake, django_capture_on_commit_callbacks
):
    message = send()
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    # No number: an empty list is every recipient of the batch, and ours is its only one.
    assert fake.feedback == [(message.provider_message_id, ())]
    [request] = feedback_posts(fake)
    assert request.body == {"recipients": []}
    assert request.path.endswith(f"/batches/{message.provider_message_id}/delivery_feedback")


@pytest.mark.parametrize("outcome", ["failed", "expired"])
def test_sinch_takes_no_negative_feedback(sinch, fake, outcome, django_capture_on_commit_callbacks):
    message = send()
    before = len(fake.requests)
    with pytest.raises(PermanentError):
        sinch.report_feedback(
            provider_message_id=message.provider_message_id, outcome=outcome, idempotency_key="k"
        )
    with django_capture_on_commit_callbacks(execute=True):
        services.fail(message)

    message.refresh_from_db()
    assert message.feedback == Feedback.FAILED
    assert len(fake.requests) == before
    assert not ProviderCall.objects.filter(message=message).exists()


def test_a_superseded_message_reports_nothing(sinch, fake):
    # Sinch's feedback says "delivered"; a message whose resend converted cannot be vouched for.
    message = send()
    assert sinch.superseded_outcome(message) is None


def test_feedback_for_a_batch_sinch_does_not_know_is_permanent_not_found(sinch, fake):
    with pytest.raises(PermanentError) as refused:
        sinch.report_feedback(
            provider_message_id="01ARZ3NDEKTSV4RRFFQ69G5FAV",
            outcome="confirmed",
            idempotency_key="k",
        )
    assert refused.value.code == "NOT_FOUND"


def test_a_throttled_report_is_retryable_and_the_sdk_does_not_retry_it_itself(sinch, fake):
    message = send()
    fake.fail_next(1, status=429, text="slow down")
    before = len(fake.requests)

    with pytest.raises(RetryableError) as throttled:
        sinch.report_feedback(
            provider_message_id=message.provider_message_id,
            outcome="confirmed",
            idempotency_key="k",
        )

    # One request: the outbox owns the backoff (the SDK would sleep and retry three times).
    assert (throttled.value.code, len(fake.requests) - before) == ("RESOURCE_EXHAUSTED", 1)


# -- fetching the status ---------------------------------------------------------------------------


def test_fetch_status_reads_the_batch_summary_without_the_number(sinch, fake):
    message = send()
    fake.set_status(message.provider_message_id, "Failed", code=11)

    update = sinch.fetch_status(message)

    assert (update.delivery_status, update.provider_status) == (Delivery.UNDELIVERED, "Failed")
    assert update.detail == {"code": "11"}
    request = fake.requests[-1]
    assert (request.method, request.query["type"]) == ("GET", ["summary"])


def test_a_batch_whose_callbacks_were_lost_is_synced_from_queued(sinch, fake, clock):
    message = send()
    fake.set_status(message.provider_message_id, "Delivered")
    clock.advance(seconds=app_settings.SYNC_STALE_AFTER + 1)

    polling.sync_statuses()

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "Delivered")


# -- credentials -----------------------------------------------------------------------------------


def test_project_credentials_get_an_oauth_token_once_and_use_it(settings, server, fake):
    configure(
        settings,
        PROJECT_ID=PROJECT_ID,
        KEY_ID=KEY_ID,
        KEY_SECRET=KEY_SECRET,
        BASE_URL=server.url + "/sinch",
        FROM=FROM,
    )
    first, second = send(), send()

    token_requests = [r for r in fake.requests if r.path.endswith("/oauth2/token")]
    assert len(token_requests) == 1
    assert token_requests[0].auth == "basic"
    assert token_requests[0].body == {"grant_type": ["client_credentials"]}
    sends = batches_sent(fake)
    assert [r.path for r in sends] == [f"/sinch/xms/v1/{PROJECT_ID}/batches"] * 2
    assert {first.provider_message_id, second.provider_message_id} <= set(fake.batches)


def test_a_wrong_key_secret_is_permanent_with_the_oauth_error(settings, server, fake):
    configure(
        settings,
        PROJECT_ID=PROJECT_ID,
        KEY_ID=KEY_ID,
        KEY_SECRET="wrong",
        BASE_URL=server.url + "/sinch",
        FROM=FROM,
    )
    with pytest.raises(PermanentError) as refused:
        get_provider("sinch").send(to=TO, body=BODY, sender=None, channel="sms", message_id="m")
    assert refused.value.code == "invalid_client"
    assert fake.batches == {}


def test_credentials_come_from_the_environment(settings, server, fake, monkeypatch):
    monkeypatch.setenv("SINCH_SERVICE_PLAN_ID", SERVICE_PLAN_ID)
    monkeypatch.setenv("SINCH_API_TOKEN", API_TOKEN)
    configure(settings, BASE_URL=server.url, FROM=FROM)

    message = send()

    assert message.provider_message_id in fake.batches
    assert "feedback_app.W130" not in _ids(get_provider("sinch").config)


def test_without_credentials_nothing_is_sent(settings, server, fake):
    configure(settings, BASE_URL=server.url, FROM=FROM, SERVICE_PLAN_ID=SERVICE_PLAN_ID)
    with pytest.raises(PermanentError) as refused:
        get_provider("sinch").send(to=TO, body=BODY, sender=None, channel="sms", message_id="m")
    assert refused.value.code == "missing_credentials"
    assert fake.requests == []


def test_a_refused_connection_is_retryable(settings):
    configure(
        settings, **{"SERVICE_PLAN_ID": "p", "API_TOKEN": "t", "BASE_URL": "http://127.0.0.1:9"}
    )
    with pytest.raises(RetryableError) as refused:
        get_provider("sinch").send(to=TO, body=BODY, sender="S", channel="sms", message_id="m")
    assert refused.value.code == "ConnectionError"


# -- checks ----------------------------------------------------------------------------------------


def _ids(config: dict[str, Any]) -> set[str]:
    return {m.id for m in SinchProvider.check_config("sinch", config)}


def test_project_credentials_satisfy_the_credentials_check():
    config = {"PROJECT_ID": "p", "KEY_ID": "k", "KEY_SECRET": "s", "WEBHOOK_SECRET": "w"}
    assert "feedback_app.W130" not in _ids(config)
    assert "feedback_app.W130" in _ids({**config, "KEY_SECRET": ""})


def test_basic_auth_alone_satisfies_the_webhook_check():
    assert "feedback_app.W131" not in _ids({"WEBHOOK_BASIC_AUTH": "sinch:pw"})
    assert "feedback_app.W131" in _ids({})


def test_no_callback_url_warns(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": None}
    assert "feedback_app.W132" in _ids({})
    assert "feedback_app.W132" not in _ids({"CALLBACK_URL": "https://example.com/hook"})


@pytest.mark.parametrize(
    ("report", "check_id"),
    [
        ("per_record", "feedback_app.E130"),
        ("summary", "feedback_app.W133"),
        ("none", "feedback_app.W133"),
    ],
)
def test_a_delivery_report_without_per_recipient_callbacks_is_flagged(report, check_id):
    assert check_id in _ids({"DELIVERY_REPORT": report})
    assert not _ids({"DELIVERY_REPORT": "per_recipient_final"}) & {
        "feedback_app.E130",
        "feedback_app.W133",
    }


# -- the webhook -----------------------------------------------------------------------------------


def post_report(client, body: bytes, headers: dict[str, str], path: str | None = None):
    return client.post(
        path or reverse("feedback_app:webhook-sinch"),
        data=body,
        content_type="application/json",
        headers=headers,
    )


def test_a_signed_report_is_applied_with_its_code_but_never_the_recipient(sinch, fake, client):
    message = send()
    report = fake.report(message.provider_message_id, "Failed", code=11)
    report["operator"] = "310260"
    body = json.dumps(report).encode()

    assert post_report(client, body, sign_callback(body, SECRET)).status_code == 200

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.UNDELIVERED, "Failed")
    event = MessageEvent.objects.get(message=message, to_value=Delivery.UNDELIVERED)
    assert event.detail["code"] == "11"
    assert event.detail["operator"] == "310260"
    assert TO not in repr(event.detail)


def test_a_report_with_a_tampered_body_is_refused(sinch, fake, client):
    message = send()
    body = json.dumps(fake.report(message.provider_message_id, "Dispatched")).encode()
    headers = sign_callback(body, SECRET)
    tampered = body.replace(b"Dispatched", b"Delivered")

    assert post_report(client, tampered, headers).status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_report_without_a_signature_is_refused(sinch, fake, client):
    message = send()
    body = json.dumps(fake.report(message.provider_message_id, "Delivered")).encode()
    assert post_report(client, body, {}).status_code == 403


def test_basic_auth_in_the_callback_url_authenticates_reports(settings, server, fake, client):
    configure(settings, **plan_settings(server, WEBHOOK_SECRET=None, WEBHOOK_BASIC_AUTH="sinch:pw"))
    message = send()
    body = json.dumps(fake.report(message.provider_message_id, "Delivered")).encode()

    wrong = base64.b64encode(b"sinch:nope").decode()
    refused = post_report(client, body, {"Authorization": f"Basic {wrong}"})
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"].startswith("Basic")
    right = base64.b64encode(b"sinch:pw").decode()
    assert post_report(client, body, {"Authorization": f"Basic {right}"}).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_without_webhook_authentication_every_report_is_refused(settings, server, fake, client):
    configure(settings, **plan_settings(server, WEBHOOK_SECRET=None))
    message = send()
    body = json.dumps(fake.report(message.provider_message_id, "Delivered")).encode()

    assert post_report(client, body, sign_callback(body, SECRET)).status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_report_for_an_unknown_batch_finds_the_message_by_client_reference(sinch, fake, client):
    """A report can come before the send's answer (and its batch id) is committed."""
    message = send()
    report = fake.report(message.provider_message_id, "Delivered")
    Message.objects.filter(pk=message.pk).update(provider_message_id="01ARZ3NDEKTSV4RRFFQ69G5FAV")
    body = json.dumps(report).encode()

    assert post_report(client, body, sign_callback(body, SECRET)).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_a_batch_delivery_report_is_applied_from_its_counts(sinch, fake, client):
    message = send()
    body = json.dumps(
        {
            "type": "delivery_report_sms",
            "batch_id": message.provider_message_id,
            "statuses": [{"code": 0, "count": 1, "status": "Delivered"}],
            "total_message_count": 1,
        }
    ).encode()

    assert post_report(client, body, sign_callback(body, SECRET)).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"type": "mo_text", "id": "x", "from": "+1", "to": "2", "body": "hi"}, 200),
        ({"type": "recipient_delivery_report_sms", "batch_id": "x"}, 400),
        ({"type": "something_else"}, 400),
        ([1, 2], 400),
    ],
)
def test_what_is_not_a_delivery_report_is_ignored_or_refused(sinch, fake, client, payload, status):
    body = json.dumps(payload).encode()
    assert post_report(client, body, sign_callback(body, SECRET)).status_code == status
    assert not MessageEvent.objects.exists()


def test_a_webhook_for_a_key_with_another_backend_is_not_found(settings, server, fake, client):
    configure(settings, **plan_settings(server))
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "other": {
                "BACKEND": "feedback_app.providers.locmem.LocmemProvider",
                "WEBHOOK_SECRET": SECRET,
            },
        },
    }
    body = b'{"type": "mo_text"}'
    path = reverse("feedback_app:webhook-sinch-key", kwargs={"provider": "other"})
    assert post_report(client, body, sign_callback(body, SECRET), path).status_code == 404


# -- the carrier, end to end -----------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_carrier_fake_posts_signed_reports_to_the_live_webhook(settings, live_server):
    carrier = CarrierSinchFake(webhook_secret=SECRET, delays=(0.05, 0.15), undelivered_rate=0.1)
    reachable, off = "+14155550123", "+14155550125"
    assert not unreachable(reachable, 0.1) and unreachable(off, 0.1)
    with FakeServer(carrier) as server:
        configure(settings, public_url=live_server.url, **plan_settings(server))
        message = services.send(provider="sinch", to=reachable, body=BODY)
        lost = services.send(provider="sinch", to=off, body=BODY)

        wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
        wait_for(lambda: Message.objects.get(pk=lost.pk).delivery_status == Delivery.UNDELIVERED)
        # Dispatched first (per_recipient reports every status), then Delivered.
        raw = MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
        assert set(raw.values_list("to_value", flat=True)) >= {Delivery.SENT, Delivery.DELIVERED}
        assert Message.objects.get(pk=lost.pk).provider_status == "Failed"

        assert services.confirm(message) is True
        assert carrier.feedback == [(message.provider_message_id, ())]


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
