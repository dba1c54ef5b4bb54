"""The built-in providers pass the provider contract (feedback_app.testing.contract), each through
its real SDK against its local fake. ``locmem`` is not run: it has no SDK, wire or errors to check.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from feedback_app.models import Message
from feedback_app.providers import SendResult, get_provider
from feedback_app.states import Channel, Delivery
from feedback_app.testing.aws_sms_fake import AwsSmsFake
from feedback_app.testing.chime_fake import ChimeFake
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path
from feedback_app.testing.sns_fake import CERTIFICATE_PATH, SnsPublisher
from feedback_app.testing.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, TwilioFake

#: Nothing from the machine's AWS configuration: no profile, files, region or metadata service.
AWS_ENVIRONMENT: dict[str, str | None] = {
    "AWS_ACCESS_KEY_ID": None,
    "AWS_SECRET_ACCESS_KEY": None,
    "AWS_SESSION_TOKEN": None,
    "AWS_PROFILE": None,
    "AWS_DEFAULT_REGION": None,
    "AWS_REGION": None,
    "AWS_MAX_ATTEMPTS": None,
    "AWS_RETRY_MODE": None,
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
    "AWS_EC2_METADATA_DISABLED": "true",
}


class TestTwilioContract(ProviderContract, WebhookContract):
    key = "twilio"
    reported_as = {"confirmed": "confirmed"}
    credential_checks = {"AUTH_TOKEN": "feedback_app.W101"}
    environment = dict.fromkeys(
        ["TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_API_KEY", "TWILIO_API_SECRET"]
        + ["TWILIO_EDGE", "TWILIO_REGION"]
    )
    webhook_statuses = ("sent", "delivered")
    webhook_delivery_status = Delivery.DELIVERED

    #: kind -> (HTTP status, Twilio error code).
    ERRORS = {
        "throttling": (429, 20429),
        "server_error": (503, 20503),
        "validation": (400, 21211),
        "auth": (401, 20003),
        "not_found": (404, 20404),
    }

    def make_fake(self) -> TwilioFake:
        return TwilioFake()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "ACCOUNT_SID": ACCOUNT_SID,
            "AUTH_TOKEN": AUTH_TOKEN,
            "BASE_URL": url,
            "FROM": "+15005550006",
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: TwilioFake, kind: str, message: str) -> str:
        status, code = self.ERRORS[kind]
        fake.fail_next(1, status=status, code=code, message=message)
        return str(code)

    def feedback_requested(self, fake: TwilioFake, result: SendResult) -> bool:
        return fake.messages[result.provider_message_id].provide_feedback

    def reported(self, fake: TwilioFake) -> list[tuple[str, str]]:
        return [(sid, outcome) for sid, outcomes in fake.feedback.items() for outcome in outcomes]

    def webhook_request(
        self, fake: TwilioFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        path = webhook_path("webhook-twilio", self.key, "twilio")
        sid = message.provider_message_id
        params = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "MessageSid": sid,
            "MessageStatus": provider_status,
            "SmsSid": sid,
            "SmsStatus": provider_status,
        }
        token = "not-the-auth-token" if forged else AUTH_TOKEN
        signature = RequestValidator(token).compute_signature(f"http://testserver{path}", params)
        return {
            "path": path,
            "data": urlencode(params),
            "content_type": "application/x-www-form-urlencoded",
            "headers": {"X-Twilio-Signature": signature},
        }


class AwsWithSns:
    """The AWS fake and SNS's signing certificate on one server: SNS under ``/sns/``."""

    TOPIC = "arn:aws:sns:us-east-1:123456789012:sms-events"

    def __init__(self) -> None:
        self.sms = AwsSmsFake()
        self.sns = SnsPublisher()
        #: Signs with its own key while naming the real certificate: a forger.
        self.forger = SnsPublisher()

    def reset(self) -> None:
        self.sms.reset()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable:
        if environ.get("PATH_INFO", "").startswith(CERTIFICATE_PATH):
            return self.sns(environ, start_response)
        return self.sms(environ, start_response)


class TestAwsSmsContract(ProviderContract, WebhookContract):
    key = "aws_sms"
    reported_as = {"confirmed": "RECEIVED", "failed": "FAILED"}
    # Sending credentials come from boto3's chain; the ones the app checks are the webhook's.
    credential_checks = {
        "WEBHOOK_BASIC_AUTH": "feedback_app.W103",
        "SNS_TOPIC_ARNS": "feedback_app.W103",
    }
    environment = AWS_ENVIRONMENT
    webhook_statuses = ("TEXT_SENT", "TEXT_DELIVERED")
    webhook_delivery_status = Delivery.DELIVERED

    ERRORS = {
        "throttling": "ThrottlingException",
        "server_error": "InternalServerException",
        "validation": "ValidationException",
        "auth": "AccessDeniedException",
        "not_found": "ResourceNotFoundException",
    }
    BASIC_AUTH = "sns:s3cret-webhook-password"

    def make_fake(self) -> AwsWithSns:
        return AwsWithSns()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        # The fake's certificate is trusted only as a development certificate, with DEBUG on.
        settings.DEBUG = True
        return {
            "REGION": "us-east-1",
            "ENDPOINT_URL": url,
            "ACCESS_KEY_ID": "AKIAFROMSETTINGS0001",
            "SECRET_ACCESS_KEY": "secret-from-settings",
            "CONFIGURATION_SET": "otp-events",
            "MAX_ATTEMPTS": 1,
            "WEBHOOK_BASIC_AUTH": self.BASIC_AUTH,
            "SNS_TOPIC_ARNS": [AwsWithSns.TOPIC],
            "SNS_DEV_CERTIFICATE_URLS": [url + CERTIFICATE_PATH],
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"READ_TIMEOUT": 0.2}

    def slow_down(self, fake: AwsWithSns, seconds: float) -> None:
        fake.sms.latency = seconds

    def fail_next(self, fake: AwsWithSns, kind: str, message: str) -> str:
        fake.sms.fail_next(1, self.ERRORS[kind], message)
        return self.ERRORS[kind]

    def request_count(self, fake: AwsWithSns) -> int:
        return len(fake.sms.requests)

    def feedback_requested(self, fake: AwsWithSns, result: SendResult) -> bool:
        return fake.sms.messages[result.provider_message_id].feedback_enabled

    def reported(self, fake: AwsWithSns) -> list[tuple[str, str]]:
        return [(i, status) for i, statuses in fake.sms.feedback.items() for status in statuses]

    def webhook_request(
        self, fake: AwsWithSns, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        server_url = get_provider(self.key).config["ENDPOINT_URL"]
        record = fake.sms.event_record(message.provider_message_id, provider_status)
        signer = fake.forger if forged else fake.sns
        envelope = signer.notification(
            topic_arn=AwsWithSns.TOPIC,
            message=json.dumps(record),
            certificate_url=fake.sns.certificate_url(server_url),
        )
        auth = base64.b64encode(self.BASIC_AUTH.encode()).decode()
        return {
            "path": webhook_path("webhook-sns", self.key, "aws_sms"),
            "data": json.dumps(envelope),
            "content_type": "text/plain; charset=UTF-8",
            "headers": {"Authorization": f"Basic {auth}"},
        }


class TestChimeContract(ProviderContract):
    key = "chime"
    channel = Channel.CHAT
    recipient = (
        "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
        "/channel/7d4e2b1c-3a5f-4e6d-8c9b-a1b2c3d4e5f6"
    )
    no_conversion_api = "Chime SDK Messaging has no conversion API: outcomes stay local"
    no_webhook = "Chime sends no delivery receipts: pending messages are polled"
    credential_checks = {"CHIME_BEARER": "feedback_app.W104"}
    environment = AWS_ENVIRONMENT

    ERRORS = {
        "throttling": "ThrottledClientException",
        "server_error": "ServiceUnavailableException",
        "validation": "BadRequestException",
        "auth": "UnauthorizedClientException",
        "not_found": "NotFoundException",
    }

    def make_fake(self) -> ChimeFake:
        return ChimeFake()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "REGION": "us-east-1",
            "ENDPOINT_URL": url,
            "ACCESS_KEY_ID": "AKIAFROMSETTINGS0001",
            "SECRET_ACCESS_KEY": "secret-from-settings",
            "CHIME_BEARER": f"{self.recipient.split('/channel/')[0]}/bot/otp-bot",
            "MAX_ATTEMPTS": 1,
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"READ_TIMEOUT": 0.2}

    def fail_next(self, fake: ChimeFake, kind: str, message: str) -> str:
        fake.fail_next(1, self.ERRORS[kind], message)
        return self.ERRORS[kind]
