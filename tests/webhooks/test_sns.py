"""The SNS webhook for AWS SMS events: basic auth, signatures (v1 and v2), certificate URLs, the
topic allow-list, subscription confirmation, deduplication and ordering.

Messages are signed here with a generated key and self-signed certificate served by a patched
``sns_signature.fetch``; the end-to-end tests let moto's SNS sign and POST real notifications.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.urls import reverse
from moto import mock_aws

from feedback_app import services
from feedback_app.models import Message, MessageEvent
from feedback_app.states import Delivery, EventKind
from feedback_app.testing import FakeServer
from feedback_app.testing.aws_sms_fake import AwsSmsFake
from feedback_app.webhooks import sns, sns_signature

from ..factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db

REGION = "us-east-1"
TOPIC = "arn:aws:sns:us-east-1:123456789012:sms-events"
OTHER_TOPIC = "arn:aws:sns:us-east-1:123456789012:someone-else"
CERT_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = (
    "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription"
    f"&TopicArn={TOPIC}&Token=2336412f37fb687f5d51e6e2425f004ae"
)
USER, PASSWORD = "sns", "s3cret-webhook-password"
CHALLENGE = 'Basic realm="feedback_app"'


# Signing like SNS ---------------------------------------------------------------------------


class Signer:
    """An RSA key and a self-signed certificate standing in for SNS's."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )

    def sign(self, message: dict[str, Any], version: str = "2") -> dict[str, Any]:
        algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()  # noqa: S303 (SNS v1)
        signed = dict(message, SignatureVersion=version)
        signed.setdefault("SigningCertURL", CERT_URL)
        signature = self.key.sign(canonical(signed), padding.PKCS1v15(), algorithm)
        signed["Signature"] = base64.b64encode(signature).decode()
        return signed


def canonical(message: dict[str, Any]) -> bytes:
    """The string SNS signs, written from AWS's documentation (not with the code under test)."""
    if message["Type"] == "Notification":
        names = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        names = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    return "".join(f"{name}\n{message[name]}\n" for name in names if name in message).encode()


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer()


@pytest.fixture
def fetched(monkeypatch, signer) -> list[str]:
    """URLs fetched from "SNS": our certificate at CERT_URL, 200 at SUBSCRIBE_URL, else 404."""
    urls: list[str] = []

    def fetch(url: str, timeout: float = sns_signature.FETCH_TIMEOUT) -> bytes:
        urls.append(url)
        if url == CERT_URL:
            return signer.pem
        if url == SUBSCRIBE_URL:
            return b"<ConfirmSubscriptionResponse/>"
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)

    monkeypatch.setattr(sns_signature, "fetch", fetch)
    return urls


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    cache.clear()
    sns_signature.clear_certificate_cache()
    yield
    sns_signature.clear_certificate_cache()


def aws_sms_settings(**overrides: Any) -> dict[str, Any]:
    return {
        "REGION": REGION,
        "WEBHOOK_BASIC_AUTH": f"{USER}:{PASSWORD}",
        "SNS_TOPIC_ARNS": [TOPIC],
        **overrides,
    }


@pytest.fixture(autouse=True)
def configured(settings) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "aws_sms": aws_sms_settings(),
            "aws_sms_eu": aws_sms_settings(
                REGION="eu-west-1",
                BACKEND="feedback_app.providers.aws_sms.AwsSmsProvider",
                SNS_TOPIC_ARNS=[OTHER_TOPIC],
            ),
        },
    }


def basic_auth(user: str = USER, password: str = PASSWORD) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def event(message_id: str, event_type: str = "TEXT_DELIVERED", **fields: Any) -> str:
    record = {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": 1767225600123,
        "isFinal": True,
        "originationPhoneNumber": "+12065550152",
        "destinationPhoneNumber": "+12015550123",
        "isoCountryCode": "US",
        "carrierName": "Example Wireless",
        "messageId": message_id,
        "messageStatus": event_type.removeprefix("TEXT_"),
        "messageStatusDescription": "Message has been accepted by phone",
        "context": {"feedback_app_id": "x"},
        **fields,
    }
    return json.dumps(record)


_sns_ids = iter(range(1, 10**6))


def notification(message: str, *, topic: str = TOPIC, **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": f"22b80b92-fdea-4c2c-8f9d-{next(_sns_ids):012d}",
        "TopicArn": topic,
        "Message": message,
        "Timestamp": "2026-01-01T00:00:00.123Z",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe",
        **fields,
    }


def confirmation(kind: str = "SubscriptionConfirmation", **fields: Any) -> dict[str, Any]:
    return {
        "Type": kind,
        "MessageId": f"165545c9-2a5c-472c-8df2-{next(_sns_ids):012d}",
        "Token": "2336412f37fb687f5d51e6e2425f004ae",
        "TopicArn": TOPIC,
        "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": "2026-01-01T00:00:00.123Z",
        **fields,
    }


Post = Callable[..., Any]


@pytest.fixture
def post(client, fetched) -> Post:
    def post(
        body: dict[str, Any] | str,
        *,
        auth: str | None = None,
        provider: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        url = (
            reverse("feedback_app:webhook-sns-key", args=[provider])
            if provider
            else reverse("feedback_app:webhook-sns")
        )
        data = body if isinstance(body, str) else json.dumps(body)
        extra = {"HTTP_AUTHORIZATION": auth if auth is not None else basic_auth()}
        extra.update({f"HTTP_{k.upper().replace('-', '_')}": v for k, v in (headers or {}).items()})
        return client.post(url, data=data, content_type="text/plain; charset=UTF-8", **extra)

    return post


@pytest.fixture
def message() -> Message:
    return make_message(provider="aws_sms", provider_message_id="862a8790-60c0-4430-9b2b-658bde")


def delivery_events(message: Message) -> list[tuple[str, str]]:
    return list(
        MessageEvent.objects.filter(message=message, kind=EventKind.DELIVERY)
        .order_by("pk")
        .values_list("from_value", "to_value")
    )


def assert_unchanged(message: Message) -> None:
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED
    assert delivery_events(message) == [("", Delivery.QUEUED)]


# Notifications ------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_notification_records_the_delivery(post, signer, message, version):
    body = signer.sign(notification(event(message.provider_message_id)), version)
    response = post(body)
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    assert message.provider_status == "TEXT_DELIVERED"
    assert message.delivered_at == datetime(2026, 1, 1, 0, 0, 0, 123000, tzinfo=UTC)
    latest = message.events.filter(kind=EventKind.DELIVERY).latest("pk")
    assert latest.detail == {
        "provider_status": "TEXT_DELIVERED",
        "eventType": "TEXT_DELIVERED",
        "messageStatus": "DELIVERED",
        "messageStatusDescription": "Message has been accepted by phone",
        "isFinal": True,
        "isoCountryCode": "US",
        "carrierName": "Example Wireless",
        "sns_message_id": body["MessageId"],
    }
    # The numbers in the record stay out of the database.
    assert "+12015550123" not in json.dumps(latest.detail)


def test_a_signed_subject_is_part_of_the_signature(post, signer, message):
    body = signer.sign(notification(event(message.provider_message_id), Subject="SMS event"))
    assert post(body).status_code == 200
    body["Subject"] = "Something else"
    assert post(body).status_code == 403


@pytest.mark.parametrize(("event_type", "status"), sorted(sns.EVENT_STATUSES.items()))
def test_each_text_event_type_maps_to_its_delivery_status(
    post, signer, message, event_type, status
):
    post(signer.sign(notification(event(message.provider_message_id, event_type))))
    message.refresh_from_db()
    assert message.delivery_status == status


def test_both_aws_success_events_count_as_delivered_once(post, signer, message):
    first = event(message.provider_message_id, "TEXT_SUCCESSFUL", isFinal=False)
    post(signer.sign(notification(first)))
    post(signer.sign(notification(event(message.provider_message_id, "TEXT_DELIVERED"))))
    message.refresh_from_db()
    assert message.provider_status == "TEXT_SUCCESSFUL"
    assert delivery_events(message) == [("", "queued"), ("queued", "delivered")]


def test_out_of_order_notifications_never_move_the_status_back(post, signer, message):
    for event_type in ("TEXT_DELIVERED", "TEXT_PENDING", "TEXT_SENT", "TEXT_CARRIER_UNREACHABLE"):
        body = signer.sign(notification(event(message.provider_message_id, event_type)))
        assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    assert delivery_events(message) == [("", "queued"), ("queued", "delivered")]


def test_a_duplicate_sns_message_is_acknowledged_and_handled_once(
    post, signer, message, monkeypatch
):
    calls = []
    record_delivery = services.record_delivery
    monkeypatch.setattr(
        services, "record_delivery", lambda *a, **kw: calls.append(kw) or record_delivery(*a, **kw)
    )
    body = signer.sign(notification(event(message.provider_message_id, "TEXT_SENT")))
    assert post(body).status_code == 200
    assert post(body).status_code == 200
    assert len(calls) == 1
    assert delivery_events(message) == [("", "queued"), ("queued", "sent")]


def test_a_notification_that_failed_midway_is_handled_when_sns_retries(
    post, signer, message, monkeypatch
):
    def database_down(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("database is down")

    body = signer.sign(notification(event(message.provider_message_id)))
    with monkeypatch.context() as patch:
        patch.setattr(services, "record_delivery", database_down)
        with pytest.raises(RuntimeError):
            post(body)
    assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_a_notification_for_a_message_that_is_not_ours_is_acknowledged(post, signer, message):
    response = post(signer.sign(notification(event("0d5e4c3b-not-ours"))))
    assert response.status_code == 200
    assert_unchanged(message)


@pytest.mark.parametrize(
    "payload",
    [
        event("862a8790-60c0-4430-9b2b-658bde", "VOICE_COMPLETED"),
        event("862a8790-60c0-4430-9b2b-658bde", "TEXT_SOMETHING_NEW"),
        "plain text someone published to the topic",
        json.dumps(["not", "a", "record"]),
    ],
)
def test_a_message_that_is_not_a_text_event_is_acknowledged_and_ignored(
    post, signer, message, payload
):
    assert post(signer.sign(notification(payload))).status_code == 200
    assert_unchanged(message)


def test_a_second_provider_key_has_its_own_url_and_topics(post, signer):
    eu = make_message(provider="aws_sms_eu", provider_message_id="eu-message-1")
    body = signer.sign(notification(event("eu-message-1"), topic=OTHER_TOPIC))
    assert post(body, provider="aws_sms_eu").status_code == 200
    eu.refresh_from_db()
    assert eu.delivery_status == Delivery.DELIVERED

    us_topic = signer.sign(notification(event("eu-message-1", "TEXT_SENT"), topic=TOPIC))
    assert post(us_topic, provider="aws_sms_eu").status_code == 403


def test_an_unconfigured_provider_key_is_not_found(post, signer):
    body = signer.sign(notification(event("x")))
    assert post(body, provider="nope").status_code == 404


def test_only_post_is_allowed(client):
    assert client.get(reverse("feedback_app:webhook-sns")).status_code == 405


# Refusals: nothing changes ------------------------------------------------------------------


def test_missing_basic_auth_is_challenged_so_sns_retries_with_credentials(post, signer, message):
    response = post(signer.sign(notification(event(message.provider_message_id))), auth="")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == CHALLENGE
    assert_unchanged(message)


@pytest.mark.parametrize(
    "auth",
    [
        basic_auth(password="wrong"),
        basic_auth(user="other"),
        basic_auth(password=PASSWORD + "x"),
        "Basic !!!not-base64!!!",
        "Bearer " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    ],
)
def test_wrong_credentials_are_refused(post, signer, message, auth):
    response = post(signer.sign(notification(event(message.provider_message_id))), auth=auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == CHALLENGE
    assert_unchanged(message)


def test_without_a_configured_secret_everything_is_refused(settings, post, signer, message):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(WEBHOOK_BASIC_AUTH="")},
    }
    response = post(signer.sign(notification(event(message.provider_message_id))))
    assert response.status_code == 403
    assert_unchanged(message)


def test_a_tampered_message_is_refused(post, signer, message):
    body = signer.sign(notification(event("someone-else")))
    body["Message"] = event(message.provider_message_id)
    assert post(body).status_code == 403
    assert_unchanged(message)


def test_a_signature_by_another_key_is_refused(post, message):
    body = Signer().sign(notification(event(message.provider_message_id)))
    assert post(body).status_code == 403
    assert_unchanged(message)


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://sns.evil.com/SimpleNotificationService-1.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-1.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-1.pem",
        "https://user@sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com\n/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com/evil.txt",
        "https://sns.us-east-1.amazonaws.com/x.pem?next=https://evil.com/x.pem",
        "https://s3.amazonaws.com/SimpleNotificationService-1.pem",
        "https://SNS.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "",
    ],
)
def test_a_certificate_from_anywhere_but_an_sns_host_is_never_fetched(
    post, signer, message, fetched, cert_url
):
    body = signer.sign(notification(event(message.provider_message_id), SigningCertURL=cert_url))
    assert post(body).status_code == 403
    assert fetched == []
    assert_unchanged(message)


def test_a_made_up_certificate_path_on_the_sns_host_is_refused(post, signer, message, fetched):
    made_up = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-made-up.pem"
    body = signer.sign(notification(event(message.provider_message_id), SigningCertURL=made_up))
    assert post(body).status_code == 403
    assert fetched == [made_up]
    assert_unchanged(message)


def test_a_topic_not_in_the_allow_list_is_refused_before_fetching_anything(
    post, signer, message, fetched
):
    body = signer.sign(notification(event(message.provider_message_id), topic=OTHER_TOPIC))
    assert post(body).status_code == 403
    assert fetched == []
    assert_unchanged(message)


def test_an_empty_allow_list_refuses_every_topic_and_says_so(
    settings, post, signer, message, caplog
):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_TOPIC_ARNS=[])},
    }
    assert post(signer.sign(notification(event(message.provider_message_id)))).status_code == 403
    assert "SNS_TOPIC_ARNS is empty" in caplog.text
    assert_unchanged(message)


def test_a_single_topic_arn_given_as_a_string_is_matched_exactly(settings, post, signer, message):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_TOPIC_ARNS=TOPIC)},
    }
    # A substring of the configured ARN is another topic, not a match.
    partial = signer.sign(notification(event(message.provider_message_id), topic="sms-events"))
    assert post(partial).status_code == 403
    assert_unchanged(message)
    assert post(signer.sign(notification(event(message.provider_message_id)))).status_code == 200


def test_raw_message_delivery_is_refused(post, message):
    raw = event(message.provider_message_id)
    assert post(raw, headers={"x-amz-sns-rawdelivery": "true"}).status_code == 400
    assert_unchanged(message)


@pytest.mark.parametrize(
    "body",
    [
        notification(event("862a8790-60c0-4430-9b2b-658bde")),
        event("862a8790-60c0-4430-9b2b-658bde"),
    ],
    ids=["notification-without-signature", "raw-record"],
)
def test_an_unsigned_body_is_refused(post, message, body):
    assert post(body).status_code == 403
    assert_unchanged(message)


def test_a_body_that_is_not_json_is_a_bad_request(post, message):
    assert post("Message=hello").status_code == 400


@pytest.mark.parametrize("version", ["", "3", None])
def test_an_unknown_signature_version_is_refused(post, signer, message, version):
    body = signer.sign(notification(event(message.provider_message_id)))
    body["SignatureVersion"] = version
    assert post(body).status_code == 403
    assert_unchanged(message)


def test_the_certificate_is_fetched_once_and_cached(post, signer, message, fetched):
    for event_type in ("TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"):
        post(signer.sign(notification(event(message.provider_message_id, event_type))))
    assert fetched == [CERT_URL]


def test_an_unreachable_certificate_host_asks_sns_to_retry(
    post, signer, message, monkeypatch, fetched
):
    body = signer.sign(notification(event(message.provider_message_id)))
    fetch = sns_signature.fetch

    def timeout(url: str, timeout: float = 5) -> bytes:
        raise TimeoutError("timed out")

    monkeypatch.setattr(sns_signature, "fetch", timeout)
    assert post(body).status_code == 503
    assert_unchanged(message)

    monkeypatch.setattr(sns_signature, "fetch", fetch)
    assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


# Subscription confirmation ------------------------------------------------------------------


def test_a_subscription_is_confirmed_when_the_setting_says_so(settings, post, signer, fetched):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_CONFIRM_SUBSCRIPTIONS=True)},
    }
    assert post(signer.sign(confirmation())).status_code == 200
    assert fetched == [CERT_URL, SUBSCRIBE_URL]


def test_otherwise_the_subscribe_url_is_logged_and_not_fetched(post, signer, fetched, caplog):
    caplog.set_level(logging.WARNING, logger="feedback_app")
    assert post(signer.sign(confirmation())).status_code == 200
    assert fetched == [CERT_URL]
    assert SUBSCRIBE_URL in caplog.text
    assert not Message.objects.exists()


def test_a_confirmation_with_a_foreign_subscribe_url_is_not_fetched(
    settings, post, signer, fetched
):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_CONFIRM_SUBSCRIPTIONS=True)},
    }
    body = signer.sign(confirmation(SubscribeURL="https://evil.com/?Action=ConfirmSubscription"))
    assert post(body).status_code == 403
    assert fetched == [CERT_URL]


def test_a_forged_confirmation_is_refused(settings, post, signer, fetched):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_CONFIRM_SUBSCRIPTIONS=True)},
    }
    body = signer.sign(confirmation())
    body["Token"] = "another-token"
    assert post(body).status_code == 403
    assert fetched == [CERT_URL]


def test_a_confirmation_that_could_not_be_fetched_is_tried_again_when_sns_resends_it(
    settings, post, signer, monkeypatch, fetched
):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_CONFIRM_SUBSCRIPTIONS=True)},
    }
    body = signer.sign(confirmation())
    fetch = sns_signature.fetch

    def subscribe_fails(url: str, timeout: float = 5) -> bytes:
        if url == SUBSCRIBE_URL:
            raise urllib.error.URLError("connection reset")
        return fetch(url)

    monkeypatch.setattr(sns_signature, "fetch", subscribe_fails)
    assert post(body).status_code == 503
    monkeypatch.setattr(sns_signature, "fetch", fetch)
    assert post(body).status_code == 200
    assert fetched[-1] == SUBSCRIBE_URL


def test_an_unsubscribe_confirmation_is_logged(post, signer, caplog):
    body = signer.sign(confirmation("UnsubscribeConfirmation"))
    assert post(body).status_code == 200
    assert "unsubscribed" in caplog.text


# The certificate URL check ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-9c6465fa7f48f5cacd23014631ec1136.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
        "https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-1.pem",
    ],
)
def test_sns_certificate_urls_are_accepted(url):
    assert sns_signature.is_sns_url(url, certificate=True)


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.cn.evil.com/x.pem",
        "https://sns..amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com:443/x.pem",
        "https://sns.us-east-1.amazonaws.com:/x.pem",
        "https://sns.us-east-1.amazonaws.com%2F@evil.com/x.pem",
        "https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem",
        "https://sns.us-east-1.amazonaws.com\t/x.pem",
        "https://sns.us-east-1.amazonaws.com /x.pem",
        "https://sns.us-east-1.amazonaws.com/x.pem#fragment",
        "https://[::1]/x.pem",
        "//sns.us-east-1.amazonaws.com/x.pem",
        "https://sns.us-east-1.amazonaws.com\u200b/x.pem",
        None,
        42,
    ],
)
def test_anything_else_is_not_an_sns_url(url):
    assert not sns_signature.is_sns_url(url, certificate=True)


# End to end with moto's SNS -----------------------------------------------------------------


def django_app() -> Callable[..., Any]:
    """Django's WSGI handler, closing this thread's database connections after each request."""
    handler = WSGIHandler()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        try:
            return list(handler(environ, start_response))
        finally:
            connections.close_all()

    return app


@pytest.fixture
def moto_sns(monkeypatch) -> Iterator[Any]:
    """moto's SNS. Inside ``mock_aws`` moto answers ``requests`` to AWS hosts, so the verifier's
    certificate fetch goes through ``requests`` and gets the PEM moto signed with."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_CONFIG_FILE": "/nonexistent",
        "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(
        sns_signature, "fetch", lambda url, timeout=5: requests.get(url, timeout=timeout).content
    )
    with mock_aws():
        yield boto3.client("sns", region_name=REGION)


@pytest.fixture
def live_webhook() -> Iterator[str]:
    with FakeServer(django_app()) as server:
        yield server.url + reverse("feedback_app:webhook-sns")


def subscribe(moto_sns: Any, url: str) -> str:
    topic = moto_sns.create_topic(Name="sms-events")["TopicArn"]
    assert topic == TOPIC
    moto_sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=url)
    return topic


@pytest.mark.django_db(transaction=True)
def test_moto_signed_notifications_reach_the_webhook_end_to_end(moto_sns, live_webhook):
    message = make_message(provider="aws_sms", provider_message_id="e2e-message-1")
    credentials = f"http://{USER}:{PASSWORD}@"
    topic = subscribe(moto_sns, live_webhook.replace("http://", credentials))

    for event_type in ("TEXT_PENDING", "TEXT_DELIVERED", "TEXT_SENT"):
        moto_sns.publish(TopicArn=topic, Message=event("e2e-message-1", event_type))

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    assert delivery_events(message) == [("", "queued"), ("queued", "delivered")]


@pytest.mark.django_db(transaction=True)
def test_a_message_sent_through_the_fake_is_delivered_by_the_event_aws_would_publish(
    settings, moto_sns, live_webhook
):
    fake = AwsSmsFake()
    with FakeServer(fake) as aws:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PROVIDERS": {
                "aws_sms": aws_sms_settings(
                    ENDPOINT_URL=aws.url, ACCESS_KEY_ID="test", SECRET_ACCESS_KEY="test"
                )
            },
        }
        message = services.send(provider="aws_sms", to=NUMBERS["GB"], body="Code: 123456")
    record = fake.event_record(message.provider_message_id, "TEXT_DELIVERED")
    credentials = f"http://{USER}:{PASSWORD}@"
    topic = subscribe(moto_sns, live_webhook.replace("http://", credentials))
    moto_sns.publish(TopicArn=topic, Message=json.dumps(record))

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    detail = message.events.filter(kind=EventKind.DELIVERY).latest("pk").detail
    assert detail["isoCountryCode"] == "GB"
    assert record["context"] == {"feedback_app_id": str(message.id)}


@pytest.mark.django_db(transaction=True)
def test_moto_notifications_without_the_subscription_credentials_change_nothing(
    moto_sns, live_webhook
):
    message = make_message(provider="aws_sms", provider_message_id="e2e-message-2")
    topic = subscribe(moto_sns, live_webhook)
    moto_sns.publish(TopicArn=topic, Message=event("e2e-message-2"))
    assert_unchanged(message)


@pytest.mark.django_db(transaction=True)
def test_moto_notifications_from_a_topic_not_allowed_change_nothing(
    settings, moto_sns, live_webhook
):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_TOPIC_ARNS=[OTHER_TOPIC])},
    }
    message = make_message(provider="aws_sms", provider_message_id="e2e-message-3")
    credentials = f"http://{USER}:{PASSWORD}@"
    topic = subscribe(moto_sns, live_webhook.replace("http://", credentials))
    moto_sns.publish(TopicArn=topic, Message=event("e2e-message-3"))
    assert_unchanged(message)
