"""The aws_sms backend through the real boto3 client: against AwsSmsFake over HTTP, and stubbed."""

from __future__ import annotations

import json
import logging
import re
import socket
from datetime import timedelta
from typing import Any

import pytest
from botocore.exceptions import (
    CapacityNotAvailableError,
    ConnectionClosedError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    MetadataRetrievalError,
    ReadTimeoutError,
    TokenRetrievalError,
)
from botocore.stub import Stubber
from django.core.checks import Error
from django.utils import timezone

from feedback_app import services, tasks
from feedback_app.models import Message, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers import aws as aws_module
from feedback_app.providers.aws_sms import AwsSmsProvider
from feedback_app.states import CallState, Channel, Delivery, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.aws_sms_fake import AwsSmsFake

from ..factories import NUMBERS

pytestmark = pytest.mark.django_db

BODY = "Your verification code is 482913"
CONFIGURATION_SET = "otp-events"
ORIGINATION = "+12065550152"
ACCESS_KEY = "AKIAFROMSETTINGS0001"
SECRET_KEY = "secret-from-settings-must-never-be-logged"

RETRYABLE = ["ThrottlingException", "InternalServerException"]
PERMANENT = [
    "ValidationException",
    "AccessDeniedException",
    "ResourceNotFoundException",
    "ConflictException",
    "ServiceQuotaExceededException",
]


@pytest.fixture(autouse=True)
def aws_environment(monkeypatch):
    """Nothing from the machine's AWS configuration: no profile, files or region."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        "AWS_MAX_ATTEMPTS",
        "AWS_RETRY_MODE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def configure(settings, **aws_sms: Any) -> None:
    # One attempt per call: error tests wait for none of the SDK's backoff.
    aws_sms = {
        "REGION": "us-east-1",
        "ACCESS_KEY_ID": ACCESS_KEY,
        "SECRET_ACCESS_KEY": SECRET_KEY,
        "CONFIGURATION_SET": CONFIGURATION_SET,
        "ORIGINATION_IDENTITY": ORIGINATION,
        "MAX_ATTEMPTS": 1,
        **aws_sms,
    }
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], "aws_sms": aws_sms},
        "FEEDBACK_WINDOWS": {**settings.FEEDBACK_APP["FEEDBACK_WINDOWS"], "aws_sms": 3600},
    }


@pytest.fixture(scope="module")
def shared_fake() -> AwsSmsFake:
    return AwsSmsFake()


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> AwsSmsFake:
    shared_fake.reset()
    return shared_fake


@pytest.fixture
def aws_sms(settings, server, fake) -> AwsSmsProvider:
    configure(settings, ENDPOINT_URL=server.url)
    return get_provider("aws_sms")


def send(**kwargs: Any) -> Message:
    return services.send(provider="aws_sms", to=NUMBERS["US"], body=BODY, **kwargs)


def sent_params(fake: AwsSmsFake) -> dict[str, Any]:
    (request,) = [r for r in fake.requests if r.operation == "SendTextMessage"]
    return request.body


def feedback_calls(fake: AwsSmsFake) -> int:
    return fake.operations().count("PutMessageFeedback")


def assert_matches_model(client: Any, operation: str, params: dict[str, Any]) -> None:
    """Enums, patterns and ranges of the service model, which Stubber does not check."""
    shape = client.meta.service_model.operation_model(operation).input_shape
    for name, value in params.items():
        member = shape.members[name]
        if member.type_name == "string":
            assert not member.enum or value in member.enum, (name, value)
            pattern = member.metadata.get("pattern")
            assert pattern is None or re.fullmatch(pattern, value), (name, value)
        if member.type_name == "map":
            assert len(value) <= member.metadata.get("max", len(value)), name
            for key, item in value.items():
                key_pattern = member.key.metadata.get("pattern")
                item_pattern = member.value.metadata.get("pattern")
                assert key_pattern is None or re.fullmatch(key_pattern, key), (name, key)
                assert item_pattern is None or re.fullmatch(item_pattern, item), (name, item)


# Sending ------------------------------------------------------------------------------------


def test_send_asks_for_feedback_on_a_transactional_message_with_our_id_in_context(aws_sms, fake):
    message = send()

    params = sent_params(fake)
    assert params == {
        "DestinationPhoneNumber": NUMBERS["US"],
        "MessageBody": BODY,
        "MessageType": "TRANSACTIONAL",
        "MessageFeedbackEnabled": True,
        "Context": {"feedback_app_id": str(message.id)},
        "OriginationIdentity": ORIGINATION,
        "ConfigurationSetName": CONFIGURATION_SET,
    }
    assert message.provider_message_id in fake.messages
    assert message.delivery_status == Delivery.QUEUED
    assert message.sender == ORIGINATION


def test_the_feedback_deadline_is_the_documented_hour(aws_sms, fake):
    message = send()
    assert message.feedback_deadline - message.sent_at == timedelta(hours=1)


def test_the_sender_overrides_the_origination_identity(aws_sms, fake):
    message = send(sender="ACMEOTP")
    assert sent_params(fake)["OriginationIdentity"] == "ACMEOTP"
    assert message.sender == "ACMEOTP"


def test_without_origination_or_configuration_set_aws_chooses(settings, server, fake):
    configure(settings, ENDPOINT_URL=server.url, ORIGINATION_IDENTITY=None, CONFIGURATION_SET="")
    message = send()
    params = sent_params(fake)
    assert "OriginationIdentity" not in params
    assert "ConfigurationSetName" not in params
    assert message.sender == ""


def test_options_pass_through_and_context_entries_are_added_to_ours(aws_sms, fake):
    message = send(
        TimeToLive=300,
        MaxPrice="0.05",
        ConfigurationSetName="otp-eu",
        Context={"tenant": "acme", "feedback_app_id": "not ours"},
    )
    params = sent_params(fake)
    assert params["TimeToLive"] == 300
    assert params["MaxPrice"] == "0.05"
    assert params["ConfigurationSetName"] == "otp-eu"
    assert params["Context"] == {"tenant": "acme", "feedback_app_id": str(message.id)}
    assert fake.messages[message.provider_message_id].time_to_live == 300


@pytest.mark.parametrize("option", ["MessageBody", "MessageFeedbackEnabled", "Ttl"])
def test_an_option_the_backend_owns_or_aws_lacks_is_a_programming_error(aws_sms, fake, option):
    with pytest.raises(TypeError, match=option):
        send(**{option: "x"})
    assert not fake.requests
    assert not Message.objects.exists()


def test_a_non_sms_channel_is_refused_before_calling_aws(aws_sms, fake):
    with pytest.raises(PermanentError) as info:
        aws_sms.send(
            to=NUMBERS["US"], body=BODY, sender=None, channel=Channel.WHATSAPP, message_id="x"
        )
    assert info.value.code == "unsupported_channel"
    assert not fake.requests


def test_a_value_aws_rejects_is_permanent_with_its_code_and_message(aws_sms, fake):
    # botocore checks lengths and ranges but not patterns: the service does.
    with pytest.raises(PermanentError) as info:
        send(MaxPrice="1.2.3")
    assert info.value.code == "ValidationException"
    assert "MaxPrice" in info.value.message
    assert not Message.objects.exists()


def test_a_value_botocore_rejects_is_permanent_and_never_sent(aws_sms, fake):
    with pytest.raises(PermanentError) as info:
        send(TimeToLive=1)
    assert info.value.code == "ParamValidationError"
    assert "TimeToLive" in info.value.message
    assert not fake.requests


def test_the_body_is_stored_nowhere(aws_sms, fake):
    message = send()
    message.refresh_from_db()
    stored = repr(
        (message.__dict__, list(message.events.values()), list(ProviderCall.objects.values()))
    )
    assert "482913" not in stored
    assert NUMBERS["US"] not in stored


# Errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "kind"),
    [(name, RetryableError) for name in RETRYABLE] + [(name, PermanentError) for name in PERMANENT],
)
def test_each_aws_error_lands_on_its_side_with_the_aws_code_and_message(aws_sms, fake, error, kind):
    message = send()
    fake.fail_next(error_type=error, message=f"{error} says no")
    with pytest.raises(kind) as info:
        aws_sms.report_feedback(
            provider_message_id=message.provider_message_id,
            outcome="confirmed",
            idempotency_key="k",
        )
    assert type(info.value) is kind
    assert info.value.code == error
    assert info.value.message == f"{error} says no"


def test_a_send_aws_throttles_reaches_the_caller_as_retryable_and_nothing_is_tracked(aws_sms, fake):
    fake.fail_next(error_type="ThrottlingException")
    with pytest.raises(RetryableError):
        send()
    assert not Message.objects.exists()


def test_a_spend_limit_is_permanent(aws_sms, fake):
    fake.fail_next(
        error_type="ServiceQuotaExceededException",
        message="Monthly spend limit reached",
        Reason="MONTHLY_SPEND_LIMIT_REACHED_FOR_TEXT",
    )
    with pytest.raises(PermanentError) as info:
        send()
    assert info.value.code == "ServiceQuotaExceededException"


def test_feedback_for_a_message_aws_does_not_know_is_permanent(aws_sms, fake):
    with pytest.raises(PermanentError) as info:
        aws_sms.report_feedback(
            provider_message_id="0f1e2d3c-unknown", outcome="failed", idempotency_key="k"
        )
    assert info.value.code == "ResourceNotFoundException"


def test_the_sdk_retries_a_throttled_call_itself_within_max_attempts(settings, server, fake):
    configure(settings, ENDPOINT_URL=server.url, MAX_ATTEMPTS=2)
    message = send()
    fake.fail_next(error_type="ThrottlingException")
    get_provider("aws_sms").report_feedback(
        provider_message_id=message.provider_message_id, outcome="confirmed", idempotency_key="k"
    )
    assert feedback_calls(fake) == 2
    assert fake.feedback[message.provider_message_id] == ["RECEIVED"]


def test_a_read_timeout_is_retryable(settings, server, fake):
    configure(settings, ENDPOINT_URL=server.url, READ_TIMEOUT=0.2)
    fake.latency = 1.0
    with pytest.raises(RetryableError) as info:
        send()
    assert info.value.code == "ReadTimeoutError"


def test_an_unreachable_endpoint_is_retryable(settings):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    configure(settings, ENDPOINT_URL=f"http://127.0.0.1:{port}", CONNECT_TIMEOUT=1)
    with pytest.raises(RetryableError) as info:
        send()
    assert info.value.code == "EndpointConnectionError"


@pytest.mark.parametrize(
    "error",
    [
        ConnectTimeoutError(endpoint_url="https://sms-voice.us-east-1.amazonaws.com/"),
        ReadTimeoutError(endpoint_url="https://sms-voice.us-east-1.amazonaws.com/"),
        EndpointConnectionError(endpoint_url="https://sms-voice.us-east-1.amazonaws.com/"),
        ConnectionClosedError(endpoint_url="https://sms-voice.us-east-1.amazonaws.com/"),
    ],
    ids=type,
)
def test_network_failures_are_retryable(settings, error):
    configure(settings)
    provider = get_provider("aws_sms")

    def fail(**kwargs: Any) -> None:
        raise error

    # The hook botocore's HTTP layer runs just before it sends: nothing leaves the process.
    provider.client.meta.events.register("before-send.pinpoint-sms-voice-v2", fail)
    with pytest.raises(RetryableError) as info:
        provider.report_feedback(provider_message_id="m-1", outcome="failed", idempotency_key="k")
    assert info.value.code == type(error).__name__


def test_a_bug_in_our_code_is_not_disguised_as_a_provider_error(aws_sms, monkeypatch):
    def broken(**kwargs: Any) -> None:
        raise KeyError("oops")

    monkeypatch.setattr(aws_sms.client, "put_message_feedback", broken)
    with pytest.raises(KeyError):
        aws_sms.report_feedback(provider_message_id="m-1", outcome="failed", idempotency_key="k")


# Credentials: an outage of the endpoint that hands them out is not a final answer ------------


class CredentialEndpoint:
    """A container credential endpoint (``AWS_CONTAINER_CREDENTIALS_FULL_URI``) that answers 500
    while ``down``, else hands out credentials."""

    def __init__(self) -> None:
        self.down = True
        self.requests = 0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        self.requests += 1
        if self.down:
            start_response("500 Internal Server Error", [("Content-Type", "application/json")])
            return [b'{"Code": "InternalError"}']
        expiration = (timezone.now() + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = json.dumps(
            {
                "AccessKeyId": "AKIAFROMCONTAINER001",
                "SecretAccessKey": "from-the-container-endpoint",
                "Token": "session-token",
                "Expiration": expiration,
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]


def test_a_credential_endpoint_outage_is_retryable_and_the_next_call_gets_through(
    settings, server, fake, monkeypatch
):
    endpoint = CredentialEndpoint()
    with FakeServer(endpoint) as credentials:
        monkeypatch.setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", credentials.url + "/creds")
        configure(settings, ENDPOINT_URL=server.url, ACCESS_KEY_ID=None, SECRET_ACCESS_KEY=None)
        provider = get_provider("aws_sms")

        with pytest.raises(RetryableError) as info:
            provider.report_feedback(
                provider_message_id="m-1", outcome="failed", idempotency_key="k"
            )
        assert info.value.code == "CredentialRetrievalError"
        assert endpoint.requests >= 1
        assert fake.requests == []

        endpoint.down = False
        message = send()
    assert "Credential=AKIAFROMCONTAINER001/" in fake.requests[-1].headers["authorization"]
    assert message.provider_message_id in fake.messages


def test_no_credentials_found_is_retryable(settings, server, fake):
    # What the chain ends with when the instance-metadata service did not answer in time.
    configure(settings, ENDPOINT_URL=server.url, ACCESS_KEY_ID=None, SECRET_ACCESS_KEY=None)
    with pytest.raises(RetryableError) as info:
        get_provider("aws_sms").report_feedback(
            provider_message_id="m-1", outcome="failed", idempotency_key="k"
        )
    assert info.value.code == "NoCredentialsError"
    assert fake.requests == []


@pytest.mark.parametrize(
    "error",
    [
        CredentialRetrievalError(provider="container-role", error_msg="connection refused"),
        MetadataRetrievalError(error_msg="timed out"),
        TokenRetrievalError(provider="sso", error_msg="connection reset"),
        CapacityNotAvailableError(),
    ],
    ids=type,
)
def test_credential_and_retry_quota_errors_are_retryable(error):
    assert isinstance(aws_module.classify_error(error), RetryableError)


def test_a_missing_region_stays_permanent(settings, fake):
    configure(settings, REGION=None)
    with pytest.raises(PermanentError) as info:
        get_provider("aws_sms").report_feedback(
            provider_message_id="m-1", outcome="failed", idempotency_key="k"
        )
    assert info.value.code == "NoRegionError"


def test_half_configured_credentials_stay_permanent(settings, server, fake, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    configure(settings, ENDPOINT_URL=server.url, ACCESS_KEY_ID=None, SECRET_ACCESS_KEY=None)
    with pytest.raises(PermanentError) as info:
        send()
    assert info.value.code == "PartialCredentialsError"
    assert fake.requests == []


# System checks of the backend's settings ----------------------------------------------------


def check_ids(key: str = "aws_sms") -> list[str]:
    config = get_provider(key).config
    return [message.id for message in AwsSmsProvider.check_config(key, config)]


WEBHOOK = {
    "WEBHOOK_BASIC_AUTH": "sns:secret",
    "SNS_TOPIC_ARNS": ["arn:aws:sns:us-east-1:111122223333:sms"],
}


def test_a_configured_webhook_without_a_real_cache_warns_w105(settings):
    configure(settings, **WEBHOOK)
    assert check_ids() == []
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    assert check_ids() == ["feedback_app.W105"]
    # Without the webhook there is nothing to deduplicate; W103 says what is missing instead.
    configure(settings, SNS_TOPIC_ARNS=[])
    assert check_ids() == ["feedback_app.W103"]


def test_dev_certificate_urls_are_an_error_without_debug(settings):
    configure(settings, **WEBHOOK, SNS_DEV_CERTIFICATE_URLS=["http://127.0.0.1:8765/sns/"])
    settings.DEBUG = False
    issues = AwsSmsProvider.check_config("aws_sms", get_provider("aws_sms").config)
    assert [issue.id for issue in issues] == ["feedback_app.E105"]
    assert isinstance(issues[0], Error)
    settings.DEBUG = True
    assert check_ids() == []


@pytest.mark.parametrize(
    "prefixes",
    [["http://127.0.0.1:8765"], ["127.0.0.1:8765/sns/"], [None], "ftp://fakes/sns/"],
)
def test_dev_certificate_urls_must_be_url_prefixes_ending_in_a_slash(settings, prefixes):
    settings.DEBUG = True
    configure(settings, **WEBHOOK, SNS_DEV_CERTIFICATE_URLS=prefixes)
    assert check_ids() == ["feedback_app.E106"]


# Client and settings ------------------------------------------------------------------------


def test_the_client_is_built_once_per_process_with_the_configured_timeouts_and_retries(
    settings, monkeypatch
):
    configure(settings, CONNECT_TIMEOUT=2, READ_TIMEOUT=7, MAX_ATTEMPTS=4)
    built = []
    real = aws_module.make_client
    monkeypatch.setattr(
        "feedback_app.providers.aws_sms.make_client",
        lambda *args: built.append(args) or real(*args),
    )
    provider = get_provider("aws_sms")
    assert provider.client is get_provider("aws_sms").client
    assert len(built) == 1
    config = provider.client.meta.config
    assert config.connect_timeout == 2
    assert config.read_timeout == 7
    assert config.retries == {"mode": "standard", "total_max_attempts": 4}


def test_without_endpoint_url_the_client_targets_the_real_regional_service(settings):
    configure(settings, REGION="eu-west-1")
    client = get_provider("aws_sms").client
    assert client.meta.endpoint_url == "https://sms-voice.eu-west-1.amazonaws.com"
    assert client.meta.service_model.signing_name == "sms-voice"


def test_the_region_falls_back_to_aws_default_region(settings, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-southeast-2")
    configure(settings, REGION=None)
    assert get_provider("aws_sms").client.meta.region_name == "ap-southeast-2"


def test_credentials_come_from_the_settings_else_from_boto3s_chain(
    settings, server, fake, monkeypatch
):
    configure(settings, ENDPOINT_URL=server.url)
    send()
    assert f"Credential={ACCESS_KEY}/" in fake.requests[-1].headers["authorization"]

    fake.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAFROMENVIRONMENT1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "from-environment")
    configure(settings, ENDPOINT_URL=server.url, ACCESS_KEY_ID=None, SECRET_ACCESS_KEY=None)
    send()
    assert "Credential=AKIAFROMENVIRONMENT1/" in fake.requests[-1].headers["authorization"]


def test_no_credential_is_logged(aws_sms, fake, caplog):
    caplog.set_level(logging.DEBUG)
    message = send()
    fake.fail_next(error_type="AccessDeniedException", message="Not allowed")
    with pytest.raises(PermanentError):
        aws_sms.report_feedback(
            provider_message_id=message.provider_message_id, outcome="failed", idempotency_key="k"
        )
    assert caplog.records
    assert SECRET_KEY not in caplog.text


# Stubbed: what goes into each call ----------------------------------------------------------


@pytest.fixture
def stubber(settings):
    configure(settings)
    with Stubber(get_provider("aws_sms").client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def test_stubbed_send_sends_what_the_model_allows(stubber):
    client = get_provider("aws_sms").client
    captured: dict[str, Any] = {}
    client.meta.events.register(
        "provide-client-params.pinpoint-sms-voice-v2.SendTextMessage",
        lambda params, **kwargs: captured.update(params),
    )
    stubber.add_response("send_text_message", {"MessageId": "5f9c1e2a-0b3d-4c5e-8f7a-1b2c3d4e5f60"})
    message = send(TimeToLive=600)
    assert message.provider_message_id == "5f9c1e2a-0b3d-4c5e-8f7a-1b2c3d4e5f60"
    assert captured["MessageFeedbackEnabled"] is True
    assert_matches_model(client, "SendTextMessage", captured)


@pytest.mark.parametrize(("outcome", "status"), [("confirmed", "RECEIVED"), ("failed", "FAILED")])
def test_stubbed_feedback_maps_the_outcome_to_the_feedback_status(stubber, outcome, status):
    params = {"MessageId": "5f9c1e2a-0b3d-4c5e-8f7a-1b2c3d4e5f60", "MessageFeedbackStatus": status}
    stubber.add_response("put_message_feedback", dict(params), expected_params=params)
    get_provider("aws_sms").report_feedback(
        provider_message_id=params["MessageId"], outcome=outcome, idempotency_key="k"
    )
    assert_matches_model(get_provider("aws_sms").client, "PutMessageFeedback", params)


@pytest.mark.parametrize(
    ("error", "kind", "fields"),
    [
        ("ThrottlingException", RetryableError, {}),
        ("InternalServerException", RetryableError, {"RequestId": "r-1"}),
        ("ResourceNotFoundException", PermanentError, {"ResourceType": "message"}),
        ("ValidationException", PermanentError, {"Reason": "FIELD_VALIDATION_FAILED"}),
        ("AccessDeniedException", PermanentError, {"Reason": "ACCOUNT_DISABLED"}),
    ],
)
def test_stubbed_errors_are_classified_by_code(stubber, error, kind, fields):
    stubber.add_client_error(
        "put_message_feedback",
        service_error_code=error,
        service_message="no",
        http_status_code=500 if error == "InternalServerException" else 400,
        modeled_fields=fields,
    )
    with pytest.raises(kind) as info:
        get_provider("aws_sms").report_feedback(
            provider_message_id="m-1", outcome="failed", idempotency_key="k"
        )
    assert (info.value.code, info.value.message) == (error, "no")


def test_an_unknown_outcome_is_refused_without_calling_aws(stubber):
    with pytest.raises(PermanentError) as info:
        get_provider("aws_sms").report_feedback(
            provider_message_id="m-1", outcome="unconfirmed", idempotency_key="k"
        )
    assert info.value.code == "invalid_outcome"


# Through the outbox -------------------------------------------------------------------------


def test_a_late_conversion_after_expiry_reports_received_after_failed(
    aws_sms, fake, clock, django_capture_on_commit_callbacks
):
    message = send()
    clock.advance(hours=1, seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue() == 1
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)
    assert fake.feedback[message.provider_message_id] == ["FAILED", "RECEIVED"]


def test_expiry_sends_failed_once(aws_sms, fake, clock, django_capture_on_commit_callbacks):
    message = send()
    other = send()
    clock.advance(minutes=59)
    assert services.expire_overdue() == 0
    clock.advance(minutes=1, seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue() == 2
    for _ in range(5):
        clock.advance(minutes=10)
        with django_capture_on_commit_callbacks(execute=True):
            assert services.expire_overdue() == 0
        tasks.sweep_outbox()
    assert fake.feedback == {
        message.provider_message_id: ["FAILED"],
        other.provider_message_id: ["FAILED"],
    }
    message.refresh_from_db()
    assert message.feedback == Feedback.EXPIRED


def test_a_provider_that_fails_five_times_and_then_recovers_gets_the_report_exactly_once(
    aws_sms, fake, clock, django_capture_on_commit_callbacks
):
    message = send()
    fake.fail_next(5, error_type="ThrottlingException")
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)
    call = ProviderCall.objects.get(message=message)
    assert (call.state, call.last_error_code) == (CallState.PENDING, "ThrottlingException")
    for _ in range(60 * 24):
        clock.advance(minutes=1)
        tasks.sweep_outbox()
        call.refresh_from_db()
        if call.state != CallState.PENDING:
            break
    assert call.state == CallState.SUCCEEDED
    assert call.attempts == 6
    assert feedback_calls(fake) == 6
    for _ in range(5):
        clock.advance(minutes=10)
        assert tasks.sweep_outbox() == 0
    assert fake.feedback == {message.provider_message_id: ["RECEIVED"]}


def test_a_permanent_refusal_fails_the_call_with_the_aws_code_and_is_not_retried(
    aws_sms, fake, clock, django_capture_on_commit_callbacks
):
    message = send()
    fake.fail_next(error_type="AccessDeniedException", message="not authorized")
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)
    call = ProviderCall.objects.get(message=message)
    assert (call.state, call.last_error_code, call.last_error) == (
        CallState.FAILED,
        "AccessDeniedException",
        "not authorized",
    )
    clock.advance(days=1)
    assert tasks.sweep_outbox() == 0
    assert feedback_calls(fake) == 1
    assert not fake.feedback
