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
import uuid
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
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from moto import mock_aws

from feedback_app import services
from feedback_app.models import Message, MessageEvent, SnsSubscription
from feedback_app.states import Delivery, EventKind
from feedback_app.testing import FakeServer
from feedback_app.testing.aws_sms_fake import AwsSmsFake
from feedback_app.webhooks import sns, sns_signature, subscriptions

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
    """An RSA key and a self-signed certificate standing in for SNS's (issued to
    ``common_name``, with ``dns_names`` as subject alternative names if given)."""

    def __init__(
        self, common_name: str = "sns.amazonaws.com", dns_names: tuple[str, ...] = ()
    ) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        now = datetime.now(UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
        )
        if dns_names:
            san = x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names])
            builder = builder.add_extension(san, critical=False)
        self.pem = builder.sign(self.key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)

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


def sns_time(**offset: float) -> str:
    """An SNS ``Timestamp`` (``2026-01-01T00:00:00.123Z``): now, or ``offset`` from now."""
    at = timezone.now() + timedelta(**offset)
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def notification(message: str, *, topic: str = TOPIC, **fields: Any) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": f"22b80b92-fdea-4c2c-8f9d-{next(_sns_ids):012d}",
        "TopicArn": topic,
        "Message": message,
        "Timestamp": sns_time(),
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
        "Timestamp": sns_time(),
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


def test_a_signed_notification_is_applied_under_login_required_middleware(
    settings, post, signer, message
):
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    assert post(signer.sign(notification(event(message.provider_message_id)))).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    # Its own basic-auth challenge, not a redirect to a login page.
    response = post(signer.sign(notification(event(message.provider_message_id))), auth="")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == CHALLENGE


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


def provider_events(message: Message) -> list[tuple[str, str, dict[str, Any]]]:
    return list(
        MessageEvent.objects.filter(message=message, kind=EventKind.PROVIDER)
        .order_by("pk")
        .values_list("from_value", "to_value", "detail")
    )


def test_text_delivered_after_text_successful_keeps_delivered_and_records_its_facts(
    post, signer, message
):
    first = event(message.provider_message_id, "TEXT_SUCCESSFUL", isFinal=False)
    post(signer.sign(notification(first)))
    second = event(message.provider_message_id, "TEXT_DELIVERED", carrierName="Other Wireless")
    body = signer.sign(notification(second))
    assert post(body).status_code == 200

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == ("delivered", "TEXT_DELIVERED")
    # One transition: the second event refines the first, it moves nothing.
    assert delivery_events(message) == [("", "queued"), ("queued", "delivered")]
    [(old, new, detail)] = provider_events(message)
    assert (old, new) == ("TEXT_SUCCESSFUL", "TEXT_DELIVERED")
    assert detail["isFinal"] is True
    assert detail["carrierName"] == "Other Wireless"
    assert detail["isoCountryCode"] == "US"
    assert detail["sns_message_id"] == body["MessageId"]


def test_a_late_text_successful_never_replaces_text_delivered(post, signer, message):
    post(signer.sign(notification(event(message.provider_message_id, "TEXT_DELIVERED"))))
    late = event(message.provider_message_id, "TEXT_SUCCESSFUL", isFinal=False)
    post(signer.sign(notification(late)))
    message.refresh_from_db()
    assert message.provider_status == "TEXT_DELIVERED"
    assert provider_events(message) == []


def test_a_repeated_text_delivered_is_recorded_once(post, signer, message):
    first = event(message.provider_message_id, "TEXT_SUCCESSFUL", isFinal=False)
    post(signer.sign(notification(first)))
    for _ in range(3):
        # New SNS MessageIds: not caught by the deduplication, only by the state.
        post(signer.sign(notification(event(message.provider_message_id, "TEXT_DELIVERED"))))
    assert len(provider_events(message)) == 1


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


@pytest.mark.parametrize(
    "failure",
    [
        RuntimeError("database is down"),
        # gunicorn's worker timeout raises SystemExit in a sync worker; SIGKILL never returns.
        SystemExit(1),
    ],
    ids=["error", "worker-killed"],
)
def test_a_notification_that_failed_midway_is_handled_when_sns_retries(
    post, signer, message, monkeypatch, failure
):
    """No answer reached SNS, so its retry of the same MessageId must be handled."""

    def fails(*args: Any, **kwargs: Any) -> bool:
        raise failure

    body = signer.sign(notification(event(message.provider_message_id)))
    with monkeypatch.context() as patch:
        patch.setattr(services, "record_delivery", fails)
        with pytest.raises(type(failure)):
            post(body)
    assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_a_notification_for_a_message_that_is_not_ours_is_acknowledged(post, signer, message):
    response = post(signer.sign(notification(event("0d5e4c3b-not-ours"))))
    assert response.status_code == 200
    assert_unchanged(message)


# Events that arrive before the message's row -----------------------------------------------


def now_ms(**offset: float) -> int:
    return int((datetime.now(UTC) + timedelta(**offset)).timestamp() * 1000)


def early_event(our_id: uuid.UUID, aws_id: str = "aws-early-1", **fields: Any) -> str:
    """A recent event of a message we sent, whose context names our id."""
    fields.setdefault("eventTimestamp", now_ms())
    return event(aws_id, context={"feedback_app_id": str(our_id)}, **fields)


def test_a_recent_event_for_our_message_not_recorded_yet_asks_sns_to_deliver_it_again(post, signer):
    our_id = uuid.uuid4()
    body = signer.sign(notification(early_event(our_id)))

    response = post(body)

    assert response.status_code == 503
    assert not Message.objects.exists()
    # send() commits the row; SNS's next delivery of the same notification is applied.
    message = make_message(provider="aws_sms", provider_message_id="aws-early-1", message_id=our_id)
    assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_an_old_event_for_a_message_without_a_row_is_acknowledged_and_dropped(post, signer):
    our_id = uuid.uuid4()
    body = signer.sign(notification(early_event(our_id, eventTimestamp=now_ms(minutes=-16))))

    assert post(body).status_code == 200

    # Marked handled: a later row does not bring the dropped event back.
    message = make_message(provider="aws_sms", provider_message_id="aws-early-1", message_id=our_id)
    assert post(body).status_code == 200
    assert_unchanged(message)


@pytest.mark.parametrize(
    "context",
    [
        {},
        {"feedback_app_id": "not-a-uuid"},
        {"feedback_app_id": "{12345678-1234-5678-1234-567812345678}"},
        {"feedback_app_id": 42},
        {"another_key": "12345678-1234-5678-1234-567812345678"},
        "12345678-1234-5678-1234-567812345678",
    ],
    ids=["empty", "not-a-uuid", "not-our-form", "not-a-string", "another-key", "not-a-map"],
)
def test_an_event_whose_context_names_none_of_our_ids_is_acknowledged(post, signer, context):
    body = signer.sign(notification(event("aws-unknown", context=context, eventTimestamp=now_ms())))
    assert post(body).status_code == 200


def test_an_event_for_our_id_recorded_under_another_provider_key_is_not_retried(post, signer):
    our_id = uuid.uuid4()
    make_message(provider="aws_sms_eu", provider_message_id="aws-early-1", message_id=our_id)
    assert post(signer.sign(notification(early_event(our_id)))).status_code == 200


def test_the_message_is_found_by_our_id_when_the_aws_id_does_not_match(post, signer):
    our_id = uuid.uuid4()
    message = make_message(
        provider="aws_sms", provider_message_id="recorded-under-another-id", message_id=our_id
    )
    assert post(signer.sign(notification(early_event(our_id)))).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


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


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 100_000 + "1" + "}" * 100_000,
        "[" * 100_000,  # nor closed
        b"\xff\xfe{}".decode("latin-1"),
    ],
    ids=["arrays", "objects", "unclosed", "not-utf-8"],
)
def test_a_body_nested_however_deep_is_a_bad_request(client, message, body):
    response = client.post(
        reverse("feedback_app:webhook-sns"),
        data=body.encode("latin-1") if body.startswith("\xff") else body,
        content_type="text/plain",
        HTTP_AUTHORIZATION=basic_auth(),
    )
    assert response.status_code == 400
    assert response.content == b"body is not JSON"
    assert_unchanged(message)


def test_a_signed_event_record_nested_however_deep_is_acknowledged_and_ignored(
    post, signer, message
):
    body = signer.sign(notification("[" * 100_000 + "]" * 100_000))
    assert post(body).status_code == 200
    assert_unchanged(message)


# Replays: the signed Timestamp -----------------------------------------------------------------


def test_a_notification_older_than_sns_max_age_is_refused_as_a_replay(
    post, signer, message, caplog
):
    too_old = 3600 + sns.CLOCK_SKEW + 5
    body = signer.sign(
        notification(event(message.provider_message_id), Timestamp=sns_time(seconds=-too_old))
    )
    response = post(body)
    assert response.status_code == 403
    assert response.content == b"message too old"
    assert "SNS_MAX_AGE is 3600" in caplog.text
    assert_unchanged(message)


def test_a_notification_sns_retried_for_its_whole_policy_is_accepted(post, signer, message):
    # SNS's longest delivery policy retries for up to an hour after publishing.
    body = signer.sign(
        notification(event(message.provider_message_id), Timestamp=sns_time(seconds=-3590))
    )
    assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_sns_max_age_sets_the_window(settings, post, signer, message):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "SNS_MAX_AGE": 60}
    old = notification(event(message.provider_message_id), Timestamp=sns_time(minutes=-10))
    assert post(signer.sign(old)).status_code == 403
    assert_unchanged(message)
    recent = notification(event(message.provider_message_id), Timestamp=sns_time(minutes=-5))
    assert post(signer.sign(recent)).status_code == 200  # within 60 s and the clock skew


@pytest.mark.parametrize("offset", [sns.CLOCK_SKEW + 60, 365 * 24 * 3600])
def test_a_notification_from_the_future_is_refused(post, signer, message, offset):
    body = signer.sign(
        notification(event(message.provider_message_id), Timestamp=sns_time(seconds=offset))
    )
    response = post(body)
    assert response.status_code == 403
    assert response.content == b"message from the future"
    assert_unchanged(message)


def test_a_timestamp_a_little_ahead_of_our_clock_is_accepted(post, signer, message):
    body = signer.sign(
        notification(event(message.provider_message_id), Timestamp=sns_time(seconds=60))
    )
    assert post(body).status_code == 200


@pytest.mark.parametrize(
    "timestamp", ["", "yesterday", "2026-01-01T00:00:00", "9999-99-99T00:00:00Z"]
)
def test_a_signed_timestamp_that_is_not_a_time_is_refused(post, signer, message, timestamp):
    body = signer.sign(notification(event(message.provider_message_id), Timestamp=timestamp))
    response = post(body)
    assert response.status_code == 403
    assert response.content == b"no valid Timestamp"
    assert_unchanged(message)


def test_a_replayed_subscription_request_is_refused_and_not_recorded(
    settings, post, signer, fetched
):
    confirm_subscriptions(settings)
    body = signer.sign(confirmation(Timestamp=sns_time(hours=-3)))
    assert post(body).status_code == 403
    assert not SnsSubscription.objects.exists()
    assert fetched == [CERT_URL]  # the SubscribeURL was not fetched


@pytest.mark.parametrize("version", ["", "3", None])
def test_an_unknown_signature_version_is_refused(post, signer, message, version):
    body = signer.sign(notification(event(message.provider_message_id)))
    body["SignatureVersion"] = version
    assert post(body).status_code == 403
    assert_unchanged(message)


@pytest.mark.parametrize(
    ("common_name", "dns_names"),
    [
        ("evil.example.com", ()),
        ("sns.amazonaws.com.evil.example.com", ()),
        ("s3.amazonaws.com", ()),
        # A China certificate at a certificate URL of the aws partition.
        ("sns-cn-north-1.amazonaws.com.cn", ()),
        # With DNS names, those are the names; the common name is not read (RFC 6125).
        ("sns.amazonaws.com", ("evil.example.com",)),
    ],
)
def test_a_certificate_not_issued_to_sns_is_refused(
    monkeypatch, post, message, common_name, dns_names, caplog
):
    foreign = Signer(common_name, dns_names)
    monkeypatch.setattr(sns_signature, "fetch", lambda url, timeout=5: foreign.pem)
    response = post(foreign.sign(notification(event(message.provider_message_id))))
    assert response.status_code == 403
    # Why, in the log only: the answer names no certificate.
    assert response.content == b"invalid SNS signature"
    assert "not to SNS" in caplog.text
    assert_unchanged(message)


@pytest.mark.parametrize(
    ("common_name", "dns_names", "cert_url"),
    [
        ("sns.amazonaws.com", (), CERT_URL),
        ("whatever", ("sns.amazonaws.com",), CERT_URL),
        (
            "sns-signing.me-south-1.amazonaws.com",
            (),
            "https://sns.me-south-1.amazonaws.com/SimpleNotificationService-1.pem",
        ),
        (
            "sns-us-gov-west-1.amazonaws.com",
            (),
            "https://sns.us-gov-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        ),
        (
            "sns-cn-north-1.amazonaws.com.cn",
            (),
            "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
        ),
    ],
)
def test_the_names_sns_issues_its_signing_certificates_to_are_accepted(
    monkeypatch, post, message, common_name, dns_names, cert_url
):
    # As the AWS SDK for Java's SNS message manager expects them per region.
    own = Signer(common_name, dns_names)
    monkeypatch.setattr(sns_signature, "fetch", lambda url, timeout=5: own.pem)
    body = own.sign(notification(event(message.provider_message_id), SigningCertURL=cert_url))
    assert post(body).status_code == 200


# A local fake's certificate, for development --------------------------------------------------

DEV_PREFIX = "http://127.0.0.1:8765/sns/"
DEV_CERT_URL = DEV_PREFIX + "SimpleNotificationService-demo.pem"


@pytest.fixture
def dev_certificates(settings, monkeypatch, signer, fetched) -> list[str]:
    """SNS_DEV_CERTIFICATE_URLS set, and our certificate at any URL (the fetched ones listed)."""
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_DEV_CERTIFICATE_URLS=[DEV_PREFIX])},
    }
    urls: list[str] = []
    monkeypatch.setattr(
        sns_signature, "fetch", lambda url, timeout=5: urls.append(url) or signer.pem
    )
    return urls


def test_a_dev_certificate_url_is_trusted_with_debug_on(
    settings, dev_certificates, post, signer, message
):
    settings.DEBUG = True
    record = event(message.provider_message_id)
    body = signer.sign(notification(record, SigningCertURL=DEV_CERT_URL))
    assert post(body).status_code == 200
    assert dev_certificates == [DEV_CERT_URL]
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_a_dev_certificate_url_is_ignored_with_debug_off(
    settings, dev_certificates, post, signer, message, caplog
):
    settings.DEBUG = False
    record = event(message.provider_message_id)
    body = signer.sign(notification(record, SigningCertURL=DEV_CERT_URL))
    assert post(body).status_code == 403
    assert dev_certificates == []
    assert "SNS_DEV_CERTIFICATE_URLS is ignored" in caplog.text
    assert_unchanged(message)


@pytest.mark.parametrize(
    "cert_url",
    [
        "http://127.0.0.1:87650/sns/SimpleNotificationService-demo.pem",
        "http://127.0.0.1:8765/other/SimpleNotificationService-demo.pem",
        "http://localhost:8765/sns/SimpleNotificationService-demo.pem",
    ],
)
def test_only_urls_under_a_dev_prefix_are_trusted(
    settings, dev_certificates, post, signer, message, cert_url
):
    settings.DEBUG = True
    body = signer.sign(notification(event(message.provider_message_id), SigningCertURL=cert_url))
    assert post(body).status_code == 403
    assert dev_certificates == []


def test_the_certificate_is_fetched_once_and_cached(post, signer, message, fetched):
    for event_type in ("TEXT_QUEUED", "TEXT_SENT", "TEXT_DELIVERED"):
        post(signer.sign(notification(event(message.provider_message_id, event_type))))
    assert fetched == [CERT_URL]


def test_an_unreachable_certificate_host_asks_sns_to_retry(
    post, signer, message, monkeypatch, fetched, caplog
):
    body = signer.sign(notification(event(message.provider_message_id)))
    fetch = sns_signature.fetch

    def unreachable(url: str, timeout: float = 5) -> bytes:
        raise urllib.error.URLError(OSError(111, "Connection refused"))

    monkeypatch.setattr(sns_signature, "fetch", unreachable)
    response = post(body)
    assert response.status_code == 503
    # The host and the errno are logged for the site, not answered to the caller.
    assert response.content == b"signing certificate unavailable; try again later"
    assert "sns.us-east-1.amazonaws.com" in caplog.text and "Errno 111" in caplog.text
    assert_unchanged(message)

    monkeypatch.setattr(sns_signature, "fetch", fetch)
    assert post(body).status_code == 200
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


# Subscription confirmation ------------------------------------------------------------------


def confirm_subscriptions(settings) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_CONFIRM_SUBSCRIPTIONS=True)},
    }


def test_a_subscription_is_confirmed_when_the_setting_says_so(settings, post, signer, fetched):
    confirm_subscriptions(settings)
    body = signer.sign(confirmation())
    assert post(body).status_code == 200
    assert fetched == [CERT_URL, SUBSCRIBE_URL]
    subscription = SnsSubscription.objects.get()
    assert (subscription.provider, subscription.sns_message_id) == ("aws_sms", body["MessageId"])
    assert subscription.confirmed_at is not None
    assert subscription.confirmed_by == ""


def test_otherwise_the_subscribe_url_is_recorded_and_logged_and_not_fetched(
    post, signer, fetched, caplog
):
    caplog.set_level(logging.WARNING, logger="feedback_app")
    before = timezone.now()
    body = signer.sign(confirmation())
    assert post(body).status_code == 200
    assert fetched == [CERT_URL]
    assert SUBSCRIBE_URL in caplog.text
    assert not Message.objects.exists()
    subscription = SnsSubscription.objects.get()
    assert (subscription.provider, subscription.topic_arn) == ("aws_sms", TOPIC)
    assert (subscription.sns_message_id, subscription.subscribe_url) == (
        body["MessageId"],
        SUBSCRIBE_URL,
    )
    assert subscription.received_at >= before
    assert subscription.confirmed_at is None


def test_a_confirmation_request_sns_sends_again_is_one_subscription(post, signer, fetched):
    body = signer.sign(confirmation())
    assert post(body).status_code == 200
    cache.clear()  # as if another process, with its own cache, got the second delivery
    assert post(body).status_code == 200
    assert SnsSubscription.objects.count() == 1
    # A new request (subscribed again) is another one.
    assert post(signer.sign(confirmation())).status_code == 200
    assert SnsSubscription.objects.count() == 2


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
    assert not SnsSubscription.objects.exists()


@pytest.mark.parametrize("confirm", [True, False])
@pytest.mark.parametrize(
    "subscribe_url",
    [
        "https://evil.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn=" + TOPIC,
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + OTHER_TOPIC,
        "https://sns.us-east-1.amazonaws.com/?TopicArn=" + TOPIC,
    ],
    ids=["foreign-host", "http", "other-action", "other-topic", "no-action"],
)
def test_a_subscribe_url_that_is_not_snss_confirmation_of_this_topic_is_refused(
    settings, post, signer, fetched, confirm, subscribe_url
):
    if confirm:
        confirm_subscriptions(settings)
    assert post(signer.sign(confirmation(SubscribeURL=subscribe_url))).status_code == 403
    assert fetched == [CERT_URL]
    assert not SnsSubscription.objects.exists()


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
    settings, post, signer, monkeypatch, fetched, caplog
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
    response = post(body)
    assert response.status_code == 503
    assert response.content == b"could not confirm the subscription; try again later"
    assert "connection reset" in caplog.text
    assert SnsSubscription.objects.get().confirmed_at is None
    monkeypatch.setattr(sns_signature, "fetch", fetch)
    assert post(body).status_code == 200
    assert fetched[-1] == SUBSCRIBE_URL
    assert SnsSubscription.objects.get().confirmed_at is not None


def test_an_unsubscribe_confirmation_is_logged(post, signer, caplog):
    body = signer.sign(confirmation("UnsubscribeConfirmation"))
    assert post(body).status_code == 200
    assert "unsubscribed" in caplog.text


# Confirming a recorded subscription from the admin -----------------------------------------

REAL_FETCH = sns_signature.fetch


class FakeSns:
    """SNS's ConfirmSubscription endpoint, locally: records each GET."""

    def __init__(self, status: str = "200 OK") -> None:
        self.status = status
        self.requests: list[tuple[str, str, str]] = []

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        self.requests.append(
            (environ["REQUEST_METHOD"], environ["PATH_INFO"], environ["QUERY_STRING"])
        )
        start_response(self.status, [("Content-Type", "text/xml")])
        return [b"<ConfirmSubscriptionResponse/>"]


@pytest.fixture
def fake_sns(monkeypatch) -> Iterator[FakeSns]:
    """The fake behind ``https://sns.us-east-1.amazonaws.com``: the real ``fetch`` (urllib, no
    redirects) sends the request to it instead of AWS."""
    fake = FakeSns()
    with FakeServer(fake) as server:

        def fetch(url: str, timeout: float = sns_signature.FETCH_TIMEOUT) -> bytes:
            local = url.replace("https://sns.us-east-1.amazonaws.com", server.url, 1)
            assert local != url, f"not an SNS URL of the fake: {url}"
            return REAL_FETCH(local, timeout)

        monkeypatch.setattr(sns_signature, "fetch", fetch)
        yield fake


@pytest.fixture
def recorded(post, signer) -> SnsSubscription:
    """A subscription the webhook recorded, not confirmed."""
    assert post(signer.sign(confirmation())).status_code == 200
    return SnsSubscription.objects.get()


def confirm_in_admin(client: Any, *subscriptions: SnsSubscription) -> list[str]:
    response = client.post(
        reverse("admin:feedback_app_snssubscription_changelist"),
        {"action": "confirm_selected", "_selected_action": [s.pk for s in subscriptions]},
        follow=True,
    )
    assert response.status_code == 200
    return [str(message) for message in response.context["messages"]]


def test_the_admin_action_confirms_a_recorded_subscription_with_a_get_of_its_url(
    recorded, fake_sns, admin_client, admin_user
):
    notices = confirm_in_admin(admin_client, recorded)

    query = SUBSCRIBE_URL.split("?", 1)[1]
    assert fake_sns.requests == [("GET", "/", query)]
    recorded.refresh_from_db()
    assert recorded.confirmed_at is not None
    assert recorded.confirmed_by == admin_user.get_username()
    assert notices == [f"{TOPIC}: subscription confirmed."]


def test_confirming_a_confirmed_subscription_fetches_nothing(recorded, fake_sns, admin_client):
    confirm_in_admin(admin_client, recorded)
    notices = confirm_in_admin(admin_client, recorded)
    assert len(fake_sns.requests) == 1
    assert notices == [f"{TOPIC}: already confirmed."]


def test_when_sns_refuses_the_subscription_stays_unconfirmed_and_the_admin_says_why(
    recorded, fake_sns, admin_client
):
    fake_sns.status = "400 Bad Request"
    notices = confirm_in_admin(admin_client, recorded)
    recorded.refresh_from_db()
    assert recorded.confirmed_at is None
    assert len(notices) == 1 and "not confirmed" in notices[0] and "HTTP 400" in notices[0]


@pytest.mark.parametrize(
    "subscribe_url",
    [
        "https://evil.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
        "https://sns.us-east-1.amazonaws.com.evil.com/?Action=ConfirmSubscription&TopicArn="
        + TOPIC,
        "http://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + TOPIC,
        "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&TopicArn=" + TOPIC,
        "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=" + OTHER_TOPIC,
    ],
)
def test_a_stored_url_that_is_not_snss_is_refused_and_never_fetched(
    fake_sns, admin_client, monkeypatch, subscribe_url
):
    subscription = SnsSubscription.objects.create(
        provider="aws_sms",
        topic_arn=TOPIC,
        sns_message_id="m-1",
        subscribe_url=subscribe_url,
        received_at=timezone.now(),
    )
    fetches: list[str] = []
    monkeypatch.setattr(sns_signature, "fetch", lambda url, timeout=5: fetches.append(url))

    with pytest.raises(subscriptions.SubscriptionError):
        subscriptions.confirm(subscription)
    notices = confirm_in_admin(admin_client, subscription)

    assert fetches == []
    assert fake_sns.requests == []
    assert len(notices) == 1 and "not confirmed" in notices[0]
    subscription.refresh_from_db()
    assert subscription.confirmed_at is None


def test_the_subscription_admin_is_read_only_and_its_action_needs_the_change_permission(
    recorded, fake_sns, client, django_user_model
):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_snssubscription"))
    client.force_login(viewer)
    changelist = reverse("admin:feedback_app_snssubscription_changelist")

    page = client.get(changelist)
    assert page.status_code == 200
    assert TOPIC in page.content.decode()
    assert "confirm_selected" not in page.content.decode()
    client.post(changelist, {"action": "confirm_selected", "_selected_action": [recorded.pk]})
    assert fake_sns.requests == []
    assert client.get(reverse("admin:feedback_app_snssubscription_add")).status_code == 403

    viewer.user_permissions.add(Permission.objects.get(codename="change_snssubscription"))
    assert "confirm_selected" in client.get(changelist).content.decode()


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


def django_app(answers: list[int] | None = None) -> Callable[..., Any]:
    """Django's WSGI handler, closing this thread's database connections after each request;
    the HTTP status of each answer is appended to ``answers``."""
    handler = WSGIHandler()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        def record(status: str, headers: Any, *args: Any) -> Any:
            if answers is not None:
                answers.append(int(status.split()[0]))
            return start_response(status, headers, *args)

        try:
            return list(handler(environ, record))
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
def answers() -> list[int]:
    """The HTTP status of each answer the live webhook gave."""
    return []


@pytest.fixture
def live_webhook(answers) -> Iterator[str]:
    with FakeServer(django_app(answers)) as server:
        yield server.url + reverse("feedback_app:webhook-sns")


def subscribe(moto_sns: Any, url: str) -> str:
    topic = moto_sns.create_topic(Name="sms-events")["TopicArn"]
    assert topic == TOPIC
    moto_sns.subscribe(TopicArn=topic, Protocol="http", Endpoint=url)
    return topic


@pytest.mark.django_db(transaction=True)
def test_moto_signed_notifications_reach_the_webhook_end_to_end(moto_sns, live_webhook, answers):
    message = make_message(provider="aws_sms", provider_message_id="e2e-message-1")
    credentials = f"http://{USER}:{PASSWORD}@"
    topic = subscribe(moto_sns, live_webhook.replace("http://", credentials))

    for event_type in ("TEXT_PENDING", "TEXT_DELIVERED", "TEXT_SENT"):
        moto_sns.publish(TopicArn=topic, Message=event("e2e-message-1", event_type))

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    assert delivery_events(message) == [("", "queued"), ("queued", "delivered")]
    assert answers == [200, 200, 200]


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
    moto_sns, live_webhook, answers
):
    message = make_message(provider="aws_sms", provider_message_id="e2e-message-2")
    topic = subscribe(moto_sns, live_webhook)
    moto_sns.publish(TopicArn=topic, Message=event("e2e-message-2"))
    # The notification did reach the webhook, which challenged it.
    assert answers == [401]
    assert_unchanged(message)


@pytest.mark.django_db(transaction=True)
def test_moto_notifications_from_a_topic_not_allowed_change_nothing(
    settings, moto_sns, live_webhook, answers
):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {"aws_sms": aws_sms_settings(SNS_TOPIC_ARNS=[OTHER_TOPIC])},
    }
    message = make_message(provider="aws_sms", provider_message_id="e2e-message-3")
    credentials = f"http://{USER}:{PASSWORD}@"
    topic = subscribe(moto_sns, live_webhook.replace("http://", credentials))
    moto_sns.publish(TopicArn=topic, Message=event("e2e-message-3"))
    # The notification did reach the webhook, with the credentials, and the topic was refused.
    assert answers == [403]
    assert_unchanged(message)


@pytest.mark.django_db(transaction=True)
def test_motos_signing_certificate_is_issued_to_sns_and_verifies(moto_sns):
    bodies: list[dict[str, Any]] = []

    def endpoint(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        bodies.append(json.loads(environ["wsgi.input"].read(length)))
        start_response("200 OK", [])
        return [b""]

    with FakeServer(endpoint) as server:
        topic = subscribe(moto_sns, server.url + "/")
        moto_sns.publish(TopicArn=topic, Message=event("e2e-message-4"))
    [body] = bodies
    certificate = x509.load_pem_x509_certificate(sns_signature.fetch(body["SigningCertURL"]))

    assert sns_signature.certificate_names(certificate) == ["sns.amazonaws.com"]
    sns_signature.verify(body)


def test_a_notification_reads_its_message_once(post, signer, message):
    # The uncommitted-row check and the update share one lookup (the event names our id).
    record = event(message.provider_message_id, context={"feedback_app_id": str(message.pk)})
    body = signer.sign(notification(record))
    table = Message._meta.db_table
    with CaptureQueriesContext(connections["default"]) as queries:
        assert post(body).status_code == 200
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and table in q["sql"]]
    assert len(selects) == 1
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
