"""The chime backend through the real boto3 client: against ChimeFake over HTTP, and stubbed."""

from __future__ import annotations

import logging
import re
import socket
import uuid
from datetime import timedelta
from typing import Any

import pytest
from botocore.stub import Stubber
from django.utils import timezone

from feedback_app import polling, services, tasks
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.chime import CHANNEL_ARN_KEY, SUB_CHANNEL_ID_KEY, ChimeProvider
from feedback_app.states import Channel, Delivery, Feedback, Source
from feedback_app.testing import FakeServer
from feedback_app.testing.chime_fake import ChimeFake

pytestmark = pytest.mark.django_db

APP = "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
CHANNEL = f"{APP}/channel/7d4e2b1c-3a5f-4e6d-8c9b-a1b2c3d4e5f6"
OTHER_CHANNEL = f"{APP}/channel/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
BOT = f"{APP}/bot/otp-bot"
OTHER_BOT = f"{APP}/bot/verify-bot"
BODY = "Your verification code is 482913"

RETRYABLE = ["ThrottledClientException", "ServiceUnavailableException", "ServiceFailureException"]
PERMANENT = [
    "BadRequestException",
    "ForbiddenException",
    "UnauthorizedClientException",
    "NotFoundException",
    "ConflictException",
    "ResourceLimitExceededException",
]


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch):
    """Credentials from boto3's chain (the environment); nothing read from ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMENVIRONMENT")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def configure(settings, **chime: Any) -> None:
    # One attempt per call: error tests see each error once, without the SDK's retries.
    chime = {"REGION": "us-east-1", "CHIME_BEARER": BOT, "MAX_ATTEMPTS": 1, **chime}
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], "chime": chime},
    }


@pytest.fixture(scope="module")
def shared_fake() -> ChimeFake:
    return ChimeFake()


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> ChimeFake:
    shared_fake.reset()
    return shared_fake


@pytest.fixture
def chime(settings, server) -> ChimeProvider:
    configure(settings, ENDPOINT_URL=server.url, CONNECT_TIMEOUT=2, READ_TIMEOUT=2)
    return get_provider("chime")


@pytest.fixture
def stubber(settings):
    """A stubbed client: no endpoint, every answer given by the test."""
    configure(settings)
    with Stubber(get_provider("chime").client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def send(**kwargs: Any) -> Message:
    fields: dict[str, Any] = {"provider": "chime", "channel": Channel.CHAT, "to": CHANNEL}
    return services.send(body=BODY, **{**fields, **kwargs})


def posts(fake: ChimeFake) -> list:
    return [r for r in fake.requests if r.method == "POST"]


def status_reads(fake: ChimeFake) -> list:
    return [r for r in fake.requests if r.method == "GET"]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_matches_model(client, operation: str, params: dict[str, Any]) -> None:
    """Enums and patterns, which botocore's own validation (and so Stubber) does not check."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    for name, value in params.items():
        member = shape.members[name]
        if member.enum:
            assert value in member.enum, (name, value)
        if "pattern" in member.metadata:
            assert re.fullmatch(member.metadata["pattern"], value), (name, value)


# -- sending -------------------------------------------------------------------------------------


def test_send_posts_a_standard_persistent_message_to_the_channel_as_the_bearer(chime, fake):
    message = send()

    posted = fake.messages[message.provider_message_id]
    assert (posted.channel_arn, posted.content, posted.bearer) == (CHANNEL, BODY, BOT)
    assert (posted.type, posted.persistence) == ("STANDARD", "PERSISTENT")
    assert (message.channel, message.sender, message.country) == (Channel.CHAT, BOT, "")


def test_the_client_request_token_is_our_message_id(chime, fake):
    message = send()

    token = posts(fake)[0].body["ClientRequestToken"]
    assert token == message.pk.hex
    assert re.fullmatch(r"[-_a-zA-Z0-9]{2,64}", token)


@pytest.mark.parametrize(
    ("value", "status"),
    [
        ("SENT", Delivery.DELIVERED),
        ("PENDING", Delivery.QUEUED),
        ("FAILED", Delivery.FAILED),
        ("DENIED", Delivery.REJECTED),
    ],
)
def test_the_status_chime_answers_is_mapped(chime, fake, value, status):
    fake.set_send_status(CHANNEL, value, detail="processor said so")

    message = send()

    assert (message.delivery_status, message.provider_status) == (status, value)
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (status, value)


def test_the_channel_is_kept_in_clear_only_while_the_message_is_pending(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")

    sent = send(to=OTHER_CHANNEL, metadata={"flow": "login"})
    pending = send(metadata={"flow": "login"})

    assert sent.metadata == {"flow": "login"}
    assert pending.metadata == {"flow": "login", CHANNEL_ARN_KEY: CHANNEL}
    assert CHANNEL not in (sent.recipient_masked, pending.recipient_masked)


def test_the_body_is_stored_nowhere(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    message = send()

    rows = [
        *Message.objects.filter(pk=message.pk).values_list(),
        *MessageEvent.objects.filter(message=message).values_list(),
    ]
    assert BODY not in repr(rows)
    assert fake.messages[message.provider_message_id].content == BODY


def test_per_call_options_reach_chime(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")

    message = send(
        chime_bearer=OTHER_BOT,
        chime_metadata='{"purpose": "otp"}',
        chime_content_type="text/plain",
        chime_sub_channel_id="shard-7",
    )

    request = posts(fake)[0]
    assert request.headers["x-amz-chime-bearer"] == OTHER_BOT
    assert request.body["Metadata"] == '{"purpose": "otp"}'
    assert request.body["ContentType"] == "text/plain"
    assert request.body["SubChannelId"] == "shard-7"
    assert message.sender == OTHER_BOT
    assert message.metadata[SUB_CHANNEL_ID_KEY] == "shard-7"


def test_the_generic_sender_is_the_bearer_when_no_chime_bearer_is_given(chime, fake):
    message = send(sender=OTHER_BOT)

    assert fake.messages[message.provider_message_id].bearer == OTHER_BOT
    assert message.sender == OTHER_BOT


def test_persistence_comes_from_the_settings(settings, server, fake):
    configure(settings, ENDPOINT_URL=server.url, PERSISTENCE="NON_PERSISTENT")

    message = send()

    assert fake.messages[message.provider_message_id].persistence == "NON_PERSISTENT"


def test_without_a_bearer_nothing_is_sent(settings, server, fake):
    configure(settings, ENDPOINT_URL=server.url, CHIME_BEARER=None)

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "missing_bearer"
    assert fake.requests == []
    assert not Message.objects.exists()


def test_a_phone_channel_is_refused_before_calling_chime(chime, fake):
    with pytest.raises(PermanentError) as raised:
        send(channel=Channel.SMS, to="+12015550123")

    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


def test_an_unknown_option_is_a_programming_error(chime, fake):
    with pytest.raises(TypeError, match="chime_persistence"):
        send(chime_persistence="NON_PERSISTENT")

    assert fake.requests == []


@pytest.mark.parametrize(
    ("error", "kind"),
    [(name, RetryableError) for name in RETRYABLE] + [(name, PermanentError) for name in PERMANENT],
)
def test_each_chime_error_lands_on_its_side_with_the_aws_code_and_message(chime, fake, error, kind):
    fake.fail_next(1, error, message=f"{error} said no")

    with pytest.raises(kind) as raised:
        send()

    assert (raised.value.code, raised.value.message) == (error, f"{error} said no")
    assert not Message.objects.exists()


def test_a_request_chime_rejects_as_invalid_is_permanent(chime, fake):
    with pytest.raises(PermanentError) as raised:
        send(to="not-an-arn")

    assert raised.value.code == "BadRequestException"
    assert "ChannelArn" in raised.value.message


def test_a_server_error_is_retried_by_the_sdk_with_the_same_token_and_posts_once(
    settings, server, fake
):
    configure(settings, ENDPOINT_URL=server.url, MAX_ATTEMPTS=3)
    fake.fail_next(1, "ServiceUnavailableException")

    message = send()

    tokens = [request.body["ClientRequestToken"] for request in posts(fake)]
    assert tokens == [message.pk.hex, message.pk.hex]
    assert list(fake.messages) == [message.provider_message_id]


def test_an_unreachable_endpoint_is_retryable(settings):
    configure(settings, ENDPOINT_URL=f"http://127.0.0.1:{closed_port()}", CONNECT_TIMEOUT=0.5)

    with pytest.raises(RetryableError):
        send()


def test_the_client_is_built_once_per_process(chime):
    assert get_provider("chime").client is chime.client
    assert chime.client.meta.region_name == "us-east-1"


def test_credentials_come_from_boto3s_chain_unless_the_settings_name_them(
    chime, settings, server, fake
):
    send()  # as the fixture's environment says
    configure(settings, ENDPOINT_URL=server.url, ACCESS_KEY_ID="AKIDFROMSETTINGS")
    send(to=OTHER_CHANNEL)

    credentials = [r.headers["authorization"].split("Credential=")[1] for r in posts(fake)]
    assert credentials[0].startswith("AKIDFROMENVIRONMENT/")
    assert credentials[1].startswith("AKIDFROMSETTINGS/")


# -- conversion ---------------------------------------------------------------------------------


def test_a_failure_or_expiry_is_recorded_locally_only(chime, fake):
    failed = send()
    expiring = send()
    services.fail(failed)

    services.expire_overdue(now=timezone.now() + timedelta(days=1))

    expiring.refresh_from_db()
    assert expiring.feedback == Feedback.EXPIRED
    assert not ProviderCall.objects.exists()
    assert len(fake.requests) == 2


# -- polling -------------------------------------------------------------------------------------


def test_a_pending_message_is_delivered_once_its_channel_flow_lets_it_through(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    message = send()

    assert tasks.poll_statuses() == 0
    fake.settle(message.provider_message_id, "SENT")
    assert tasks.poll_statuses() == 1

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.DELIVERED, "SENT")
    assert message.delivered_at is not None
    event = MessageEvent.objects.get(message=message, source=Source.POLL)
    assert (event.from_value, event.to_value) == (Delivery.QUEUED, Delivery.DELIVERED)
    read = status_reads(fake)[-1]
    assert read.path == f"/channels/{CHANNEL}/messages/{message.provider_message_id}"
    assert read.headers["x-amz-chime-bearer"] == BOT


def test_a_message_whose_processor_failed_becomes_failed_with_the_detail(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    message = send()
    fake.settle(message.provider_message_id, "FAILED", detail="processor unreachable")

    polling.poll_open_statuses()

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.FAILED, "FAILED")
    event = MessageEvent.objects.get(message=message, source=Source.POLL)
    assert event.detail == {"provider_status": "FAILED", "status_detail": "processor unreachable"}


def test_a_denied_status_read_by_polling_becomes_rejected(stubber):
    message = services.track(
        provider="chime",
        provider_message_id="m-denied",
        to=CHANNEL,
        channel=Channel.CHAT,
        sender=BOT,
        metadata={CHANNEL_ARN_KEY: CHANNEL},
    )
    stubber.add_response(
        "get_channel_message_status",
        {"Status": {"Value": "DENIED", "Detail": "blocked word"}},
        expected_params={"ChannelArn": CHANNEL, "MessageId": "m-denied", "ChimeBearer": BOT},
    )

    assert polling.poll_open_statuses() == 1

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.REJECTED, "DENIED")


def test_a_pending_message_chime_no_longer_has_was_denied_and_becomes_rejected(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    message = send()
    assert message.provider_status == "PENDING"
    # The processor denied it: Chime drops it, and its status answers NotFoundException.
    fake.settle(message.provider_message_id, "DENIED")

    assert polling.poll_open_statuses() == 1

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.REJECTED, "NOT_FOUND")
    event = MessageEvent.objects.get(message=message, source=Source.POLL)
    assert (event.from_value, event.to_value) == (Delivery.QUEUED, Delivery.REJECTED)
    assert event.detail["error_code"] == "NotFoundException"
    assert "not found" in event.detail["status_detail"]
    assert "denied by the channel flow" in event.detail["status_detail"]
    # Settled: not asked about again.
    reads = len(status_reads(fake))
    assert polling.poll_open_statuses() == 0
    assert len(status_reads(fake)) == reads


def test_not_found_for_a_message_not_known_to_be_pending_stays_an_error(chime, fake, caplog):
    # Tracked by the host without Chime's status: nothing says a flow denied it.
    message = services.track(
        provider="chime",
        provider_message_id="m-unknown",
        to=CHANNEL,
        channel=Channel.CHAT,
        sender=BOT,
        metadata={CHANNEL_ARN_KEY: CHANNEL},
    )

    with caplog.at_level(logging.WARNING, logger="feedback_app.polling"):
        assert polling.poll_open_statuses() == 0

    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED
    assert "NotFoundException" in caplog.text


def test_a_message_still_pending_after_poll_max_age_is_no_longer_polled(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    message = send()
    later = message.sent_at + timedelta(seconds=3600 + 1)

    assert polling.poll_open_statuses(now=later) == 0

    assert status_reads(fake) == []
    message.refresh_from_db()
    assert message.delivery_status == Delivery.QUEUED


def test_a_chime_error_while_polling_is_logged_and_the_other_messages_are_polled(
    chime, fake, caplog
):
    fake.set_send_status(CHANNEL, "PENDING")
    first, second = send(), send()
    fake.settle(first.provider_message_id, "SENT")
    fake.settle(second.provider_message_id, "SENT")
    fake.fail_next(1, "ThrottledClientException", message="Rate exceeded")

    with caplog.at_level(logging.WARNING, logger="feedback_app.polling"):
        assert polling.poll_open_statuses() == 1

    assert "ThrottledClientException" in caplog.text and "Rate exceeded" in caplog.text
    statuses = dict(Message.objects.values_list("pk", "delivery_status"))
    assert sorted(statuses.values()) == [Delivery.DELIVERED, Delivery.QUEUED]
    assert polling.poll_open_statuses() == 1
    assert set(Message.objects.values_list("delivery_status", flat=True)) == {Delivery.DELIVERED}


def test_the_sub_channel_is_named_when_polling(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    send(chime_sub_channel_id="shard-7")

    polling.poll_open_statuses()

    assert status_reads(fake)[0].query["sub-channel-id"] == ["shard-7"]


def test_a_message_the_host_sent_itself_is_polled_from_what_it_tracked(chime, fake):
    fake.set_send_status(CHANNEL, "PENDING")
    provider_message_id = chime.client.send_channel_message(
        ChannelArn=CHANNEL,
        Content=BODY,
        Type="STANDARD",
        Persistence="PERSISTENT",
        ChimeBearer=OTHER_BOT,
    )["MessageId"]
    message = services.track(
        provider="chime",
        provider_message_id=provider_message_id,
        to=CHANNEL,
        channel=Channel.CHAT,
        sender=OTHER_BOT,
        metadata={CHANNEL_ARN_KEY: CHANNEL},
    )
    fake.settle(provider_message_id, "SENT")

    polling.poll_open_statuses()

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_a_message_tracked_without_its_channel_is_not_asked_about(chime, fake):
    services.track(
        provider="chime", provider_message_id="m1", to=CHANNEL, channel=Channel.CHAT, sender=BOT
    )

    assert polling.poll_open_statuses() == 0

    assert fake.requests == []


# -- the request, checked against the service model (Stubber) -------------------------------------


def test_the_send_request_matches_the_service_model(stubber):
    chime = get_provider("chime")
    message_id = uuid.uuid4()
    expected = {
        "ChannelArn": CHANNEL,
        "Content": BODY,
        "Type": "STANDARD",
        "Persistence": "PERSISTENT",
        "ClientRequestToken": message_id.hex,
        "ChimeBearer": BOT,
    }
    stubber.add_response(
        "send_channel_message",
        {"ChannelArn": CHANNEL, "MessageId": "m1", "Status": {"Value": "PENDING"}},
        expected_params=expected,
    )

    result = chime.send(
        to=CHANNEL, body=BODY, sender=None, channel=Channel.CHAT, message_id=str(message_id)
    )

    assert_matches_model(chime.client, "SendChannelMessage", expected)
    assert (result.provider_message_id, result.delivery_status) == ("m1", Delivery.QUEUED)
    assert result.metadata == {CHANNEL_ARN_KEY: CHANNEL}


@pytest.mark.parametrize(
    ("error", "status", "kind"),
    [
        ("ThrottledClientException", 429, RetryableError),
        ("ServiceUnavailableException", 503, RetryableError),
        ("ServiceFailureException", 500, RetryableError),
        ("BadRequestException", 400, PermanentError),
        ("ForbiddenException", 403, PermanentError),
        ("UnauthorizedClientException", 401, PermanentError),
        ("NotFoundException", 404, PermanentError),
        ("ConflictException", 409, PermanentError),
        ("ResourceLimitExceededException", 400, PermanentError),
    ],
)
def test_each_modeled_error_of_a_status_read_lands_on_its_side(stubber, error, status, kind):
    message = services.track(
        provider="chime",
        provider_message_id="m1",
        to=CHANNEL,
        channel=Channel.CHAT,
        sender=BOT,
        metadata={CHANNEL_ARN_KEY: CHANNEL},
    )
    stubber.add_client_error(
        "get_channel_message_status",
        service_error_code=error,
        service_message="it went wrong",
        http_status_code=status,
    )

    with pytest.raises(kind) as raised:
        get_provider("chime").fetch_status(message)

    assert (raised.value.code, raised.value.message) == (error, "it went wrong")
