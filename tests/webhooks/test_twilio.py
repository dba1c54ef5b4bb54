"""The Twilio status-callback webhook: signatures (HMAC-SHA1 and SharedKey HMAC-SHA256), the
public URL behind a proxy, and status merging of callbacks that arrive out of order."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from django.db import connection
from django.http import QueryDict
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from twilio.request_validator import RequestValidator

from feedback_app import services
from feedback_app.models import Message, MessageEvent
from feedback_app.states import Delivery, EventKind, Source
from feedback_app.testing import FakeServer
from feedback_app.testing.twilio_fake import TwilioFake

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "status-callback-auth-token"
SHARED_KEY_ID = "webhooks_sharedkey_0123456789abcdef"
SHARED_SECRET = "shared-key-secret"
TO = "+12015550123"
SID = "SM" + "a" * 32
URL = "http://testserver/feedback/webhooks/twilio/"


@pytest.fixture(autouse=True)
def twilio_settings(settings, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "twilio": {
                "ACCOUNT_SID": ACCOUNT_SID,
                "AUTH_TOKEN": AUTH_TOKEN,
                "WEBHOOK_SHARED_KEYS": {SHARED_KEY_ID: SHARED_SECRET},
            },
        },
    }


@pytest.fixture
def message() -> Message:
    return services.track(provider="twilio", provider_message_id=SID, to=TO)


def callback(status: str, sid: str = SID, **extra: str) -> dict[str, str]:
    """The parameters of a status callback, as Twilio posts them for an SMS."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": TO,
        **extra,
    }


def post(
    client,
    params: dict[str, str],
    *,
    path: str = "/feedback/webhooks/twilio/",
    signature: str | None = None,
    signed_url: str | None = None,
    token: str = AUTH_TOKEN,
    headers: dict[str, str] | None = None,
):
    """POST ``params`` form-encoded, signed as Twilio would for ``signed_url`` unless told."""
    if signature is None:
        signature = RequestValidator(token).compute_signature(signed_url or URL, params)
    return client.post(
        path,
        urlencode(params),
        content_type="application/x-www-form-urlencoded",
        headers={"X-Twilio-Signature": signature, **(headers or {})},
    )


def delivery_events(message: Message) -> list[MessageEvent]:
    return list(
        MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY).order_by("pk")
    )


def test_the_urls_are_named_for_the_default_key_and_any_other():
    assert reverse("feedback_app:webhook-twilio") == "/feedback/webhooks/twilio/"
    assert (
        reverse("feedback_app:webhook-twilio-key", kwargs={"provider": "twilio_eu"})
        == "/feedback/webhooks/twilio/twilio_eu/"
    )


# -- signatures ------------------------------------------------------------------------------------


def test_a_signed_callback_is_applied(client, message):
    response = post(client, callback("sent"))

    assert response.status_code == 200
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.SENT, "sent")
    event = delivery_events(message)[-1]
    assert (event.from_value, event.to_value, event.source) == (
        Delivery.QUEUED,
        Delivery.SENT,
        Source.WEBHOOK,
    )


def test_a_signed_callback_is_applied_under_login_required_middleware(client, message, settings):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    assert post(client, callback("delivered")).status_code == 200
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED
    # Still refused on its own terms (403), not redirected to a login page.
    assert post(client, callback("delivered"), signature="forged").status_code == 403


@pytest.mark.parametrize(
    "signature",
    ["", "forged", RequestValidator("another-token").compute_signature(URL, callback("sent"))],
    ids=["empty", "forged", "other-token"],
)
def test_a_bad_signature_is_refused_and_changes_nothing(client, message, signature):
    before = delivery_events(message)

    response = post(client, callback("delivered"), signature=signature)

    assert response.status_code == 403
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED
    assert delivery_events(message) == before


def test_a_missing_signature_is_refused(client, message):
    response = client.post(
        "/feedback/webhooks/twilio/",
        urlencode(callback("delivered")),
        content_type="application/x-www-form-urlencoded",
    )

    assert response.status_code == 403
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.QUEUED


def test_every_parameter_is_signed_even_ones_we_do_not_read(client, message):
    signed = callback("undelivered", ErrorCode="30003")
    tampered = {**signed, "ErrorCode": "30008"}
    added = {**signed, "ChannelStatusMessage": "added after signing"}

    for params in (tampered, added):
        signature = RequestValidator(AUTH_TOKEN).compute_signature(URL, signed)
        assert post(client, params, signature=signature).status_code == 403
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.QUEUED


def test_parameters_twilio_adds_without_notice_are_part_of_the_signature(client, message):
    params = callback("sent", SomeFutureParameter="x", ChannelPrefix="sms")

    assert post(client, params).status_code == 200
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.SENT


def test_without_an_auth_token_nothing_can_be_checked_so_everything_is_refused(
    client, message, settings, caplog
):
    twilio = {**settings.FEEDBACK_APP["PROVIDERS"]["twilio"], "AUTH_TOKEN": None}
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], "twilio": twilio},
    }

    response = post(client, callback("sent"))
    assert response.status_code == 403
    # Why is for the site's log; the caller learns nothing of the configuration.
    assert response.content == b"invalid X-Twilio-Signature"
    assert "no AUTH_TOKEN" in caplog.text


def test_the_auth_token_may_come_from_the_environment(client, message, settings, monkeypatch):
    twilio = {**settings.FEEDBACK_APP["PROVIDERS"]["twilio"], "AUTH_TOKEN": None}
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], "twilio": twilio},
    }
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)

    assert post(client, callback("sent")).status_code == 200


# -- the SharedKey variant (X-Twilio-Webhooks-Signature-Settings) ----------------------------------


def shared_key_headers(algorithm: str = "HMAC_SHA256", key: str = SHARED_KEY_ID) -> dict:
    return {"X-Twilio-Webhooks-Signature-Settings": f"key={key},algorithm={algorithm}"}


def test_the_sdk_signs_hmac_sha256_as_twilio_documents():
    """Twilio: only the hash changes; the string signed is still URL + sorted name/value pairs."""
    params = callback("delivered", ErrorCode="")
    signed = URL + "".join(name + params[name] for name in sorted(params))
    expected = base64.b64encode(
        hmac.new(SHARED_SECRET.encode(), signed.encode(), hashlib.sha256).digest()
    ).decode()

    computed = RequestValidator(SHARED_SECRET).compute_signature(URL, params, "HMAC_SHA256")

    assert computed == expected


def test_a_shared_key_hmac_sha256_signature_is_accepted(client, message):
    params = callback("delivered")
    signature = RequestValidator(SHARED_SECRET).compute_signature(URL, params, "HMAC_SHA256")

    response = post(client, params, signature=signature, headers=shared_key_headers())

    assert response.status_code == 200
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED


@pytest.mark.parametrize(
    ("secret", "algorithm", "headers"),
    [
        # The header names the SharedKey: the Auth Token no longer signs.
        (AUTH_TOKEN, "HMAC_SHA256", shared_key_headers()),
        (AUTH_TOKEN, "HMAC_SHA1", shared_key_headers()),
        # The hash the header names is the one checked.
        (SHARED_SECRET, "HMAC_SHA1", shared_key_headers()),
        (SHARED_SECRET, "HMAC_SHA256", shared_key_headers(key="webhooks_sharedkey_unknown")),
        (SHARED_SECRET, "HMAC_SHA256", shared_key_headers(algorithm="HMAC_SHA512")),
        # Without the header the Auth Token and HMAC-SHA1 apply.
        (SHARED_SECRET, "HMAC_SHA256", {}),
        (AUTH_TOKEN, "HMAC_SHA256", {}),
    ],
    ids=[
        "token-sha256",
        "token-sha1",
        "shared-sha1",
        "unknown-key",
        "unsupported-algorithm",
        "no-header",
        "no-header-token-sha256",
    ],
)
def test_a_signature_not_made_as_the_settings_header_says_is_refused(
    client, message, secret, algorithm, headers
):
    params = callback("delivered")
    signature = RequestValidator(secret).compute_signature(URL, params, algorithm)

    response = post(client, params, signature=signature, headers=headers)

    assert response.status_code == 403
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.QUEUED


# -- the URL Twilio called -------------------------------------------------------------------------


def test_behind_a_proxy_the_signature_is_checked_against_public_url(client, message, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    public = "https://otp.example.com/feedback/webhooks/twilio/"

    # The proxy terminated TLS: Django sees http://testserver, Twilio signed the https URL.
    assert post(client, callback("sent"), signed_url=URL).status_code == 403
    assert post(client, callback("sent"), signed_url=public).status_code == 200
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.SENT


def test_a_query_string_in_the_callback_url_is_part_of_the_signed_url(client, message, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    path = "/feedback/webhooks/twilio/?tenant=7"

    response = post(
        client,
        callback("sent"),
        path=path,
        signed_url=f"https://otp.example.com{path}",
    )

    assert response.status_code == 200


def test_without_public_url_the_request_url_is_the_signed_one(client, message):
    assert post(client, callback("sent"), signed_url=URL).status_code == 200


def test_the_callback_url_given_to_twilio_is_the_one_the_webhook_checks(client, settings):
    fake = TwilioFake(auth_token=AUTH_TOKEN)
    with FakeServer(fake) as server:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PUBLIC_URL": "https://otp.example.com",
            "PROVIDERS": {
                "twilio": {
                    "ACCOUNT_SID": ACCOUNT_SID,
                    "AUTH_TOKEN": AUTH_TOKEN,
                    "FROM": "+15005550006",
                    "BASE_URL": server.url,
                }
            },
        }
        message = services.send(provider="twilio", to=TO, body="Your code is 482913")
    sid = message.provider_message_id
    status_callback = fake.messages[sid].status_callback

    # Twilio posts to the URL it was given and signs that URL.
    path = urlsplit(status_callback).path
    response = post(client, callback("delivered", sid=sid), path=path, signed_url=status_callback)

    assert response.status_code == 200
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED


# -- status merging --------------------------------------------------------------------------------


def test_callbacks_out_of_order_never_move_a_message_backwards(client, message):
    for status in ("delivered", "sent", "queued", "sending"):
        assert post(client, callback(status)).status_code == 200

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "delivered")
    assert [e.to_value for e in delivery_events(message)] == [Delivery.QUEUED, Delivery.DELIVERED]
    assert message.delivered_at is not None


def test_a_duplicate_callback_is_recorded_once(client, message):
    for _ in range(2):
        assert post(client, callback("sent")).status_code == 200

    assert [e.to_value for e in delivery_events(message)] == [Delivery.QUEUED, Delivery.SENT]


def test_sent_then_delivered_then_read_ends_delivered_with_the_read_receipt(client, message):
    for status in ("sent", "delivered", "read"):
        post(client, callback(status))

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "read")
    assert [e.to_value for e in delivery_events(message)] == [
        Delivery.QUEUED,
        Delivery.SENT,
        Delivery.DELIVERED,
    ]
    read = MessageEvent.objects.get(message=message, kind=EventKind.PROVIDER)
    assert (read.from_value, read.to_value) == ("delivered", "read")


def test_a_late_delivered_never_replaces_read(client, message):
    for status in ("read", "delivered"):
        post(client, callback(status))

    message.refresh_from_db()
    assert message.provider_status == "read"
    assert not MessageEvent.objects.filter(message=message, kind=EventKind.PROVIDER).exists()


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("failed", Delivery.FAILED),
        ("undelivered", Delivery.UNDELIVERED),
        ("canceled", Delivery.REJECTED),
    ],
)
def test_failures_are_mapped_and_twilios_error_facts_kept(client, message, raw, status):
    params = callback(raw, ErrorCode="30003", RawDlrDoneDate="2611250912")

    post(client, params)

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (status, raw)
    assert delivery_events(message)[-1].detail == {
        "provider_status": raw,
        "error_code": "30003",
        "raw_dlr_done_date": "2611250912",
    }


def test_the_recipient_from_the_callback_is_not_stored(client, message):
    post(client, callback("delivered", ChannelStatusMessage="ok", EventType="DELIVERED"))

    event = delivery_events(message)[-1]
    assert event.detail == {
        "provider_status": "delivered",
        "channel_status_message": "ok",
        "event_type": "DELIVERED",
    }
    assert TO not in repr(list(Message.objects.values_list())) + repr(event.detail)


def test_a_callback_for_a_message_we_do_not_track_is_acknowledged_and_ignored(client, message):
    response = post(client, callback("delivered", sid="SM" + "b" * 32))

    assert response.status_code == 200
    assert Message.objects.count() == 1
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.QUEUED


def test_a_status_not_applied_is_acknowledged_and_ignored(client, message):
    response = post(client, callback("partially_delivered"))

    assert response.status_code == 200
    assert len(delivery_events(message)) == 1


def test_a_signed_request_that_is_no_status_callback_is_a_bad_request(client, message):
    params = {"AccountSid": ACCOUNT_SID, "Body": "STOP", "From": TO}

    assert post(client, params).status_code == 400


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"MessageSid=" + b"[" * 100_000, "application/x-www-form-urlencoded"),
        (b"a=" + b"%5B" * 100_000 + b"&b", "application/x-www-form-urlencoded"),
        (b"\xff\xfe\x00=\x80&%", "application/x-www-form-urlencoded"),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b"--x\r\ngarbage", "multipart/form-data; boundary=x"),
        (b"garbage", "multipart/form-data"),  # no boundary
    ],
    ids=["deep-value", "deep-escaped", "not-utf-8", "deep-json", "bad-multipart", "no-boundary"],
)
def test_a_signed_body_that_cannot_be_a_status_callback_is_a_bad_request(
    client, message, body, content_type
):
    """Signed over whatever Django reads from it, so only the parsing can refuse it: a 400,
    never a 500."""
    form = content_type == "application/x-www-form-urlencoded"
    params = QueryDict(body) if form else {}
    response = client.post(
        "/feedback/webhooks/twilio/",
        body,
        content_type=content_type,
        headers={"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(URL, params)},
    )
    assert response.status_code == 400
    assert Message.objects.get(pk=message.pk).delivery_status == Delivery.QUEUED


# -- provider keys ---------------------------------------------------------------------------------


def test_another_twilio_key_checks_with_its_own_token_and_updates_its_own_messages(
    client, settings
):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "twilio_eu": {
                "BACKEND": "feedback_app.providers.twilio.TwilioProvider",
                "AUTH_TOKEN": "eu-token",
            },
        },
    }
    ours = services.track(provider="twilio_eu", provider_message_id=SID, to=TO)
    other = services.track(provider="twilio", provider_message_id=SID, to=TO)
    path = "/feedback/webhooks/twilio/twilio_eu/"
    url = f"http://testserver{path}"

    assert post(client, callback("sent"), path=path, signed_url=url).status_code == 403
    response = post(client, callback("sent"), path=path, signed_url=url, token="eu-token")

    assert response.status_code == 200
    assert Message.objects.get(pk=ours.pk).delivery_status == Delivery.SENT
    assert Message.objects.get(pk=other.pk).delivery_status == Delivery.QUEUED


@pytest.mark.parametrize("key", ["locmem", "not-configured"])
def test_a_key_that_is_not_a_twilio_backend_is_not_found(client, key):
    path = f"/feedback/webhooks/twilio/{key}/"

    response = post(client, callback("sent"), path=path, signed_url=f"http://testserver{path}")

    assert response.status_code == 404


def test_only_post_is_allowed(client):
    assert client.get("/feedback/webhooks/twilio/").status_code == 405


def test_the_urlconf_loads_in_a_project_installed_without_the_twilio_sdk():
    code = (
        "import sys; sys.modules['twilio'] = None\n"
        "import django; django.setup()\n"
        "from django.urls import reverse\n"
        "assert reverse('feedback_app:webhook-twilio') == '/feedback/webhooks/twilio/'\n"
        "assert 'feedback_app.providers.twilio' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    env: dict[str, Any] = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}

    result = subprocess.run(  # noqa: S603 (our own interpreter and code)
        [sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr


def test_a_callback_reads_its_message_once(client, message):
    table = Message._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        assert post(client, callback("delivered")).status_code == 200
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and table in q["sql"]]
    assert len(selects) == 1
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
