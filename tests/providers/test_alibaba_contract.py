"""The alibaba backend passes the provider contract through the real Alibaba Cloud SDK, against
AlibabaFake served under a path (``/alibaba``), as the demo serves it."""

from __future__ import annotations

import json
from typing import Any

from feedback_app.models import Message
from feedback_app.providers import SendResult
from feedback_app.states import Delivery
from feedback_app.testing.alibaba_fake import ACCESS_KEY_ID, ACCESS_KEY_SECRET, AlibabaFake
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path

WEBHOOK_TOKEN = "s3cret-push-token"  # noqa: S105 (a test credential)
PREFIX = "/alibaba"

#: Contract error kind -> the Alibaba code the fake answers with.
ERRORS = {
    "throttling": "Throttling.User",
    "server_error": "ServiceUnavailable",
    "validation": "MissingParameter",
    "auth": "SignatureDoesNotMatch",
    "not_found": "InvalidAccessKeyId.NotFound",
}


class TestAlibabaContract(ProviderContract, WebhookContract):
    key = "alibaba"
    recipient = "+6591234567"
    reported_as = {"confirmed": "true", "failed": "false"}
    credential_checks = {
        "ACCESS_KEY_ID": "feedback_app.W160",
        "ACCESS_KEY_SECRET": "feedback_app.W161",
        "WEBHOOK_TOKEN": "feedback_app.W162",
    }
    environment = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": None,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": None,
        "ALIBABA_CLOUD_SECURITY_TOKEN": None,
        "ALIBABA_CLOUD_PROFILE": None,
        "ALIBABA_CLOUD_CREDENTIALS_FILE": "/nonexistent",
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    # "3" (being sent) is what QueryMessage says before the carrier's receipt; "1" the receipt.
    webhook_statuses = ("3", "1")
    webhook_delivery_status = Delivery.DELIVERED

    def make_fake(self) -> AlibabaFake:
        return AlibabaFake(path_prefix=PREFIX)

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "ACCESS_KEY_ID": ACCESS_KEY_ID,
            "ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
            "BASE_URL": url + PREFIX,
            "FROM": "Alicloud",
            "WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: AlibabaFake, kind: str, message: str) -> str:
        fake.fail_next(1, ERRORS[kind], message)
        return ERRORS[kind]

    def feedback_requested(self, fake: AlibabaFake, result: SendResult) -> bool:
        # SmsConversion needs no opt-in at send: any message Alibaba sent can be reported.
        return result.provider_message_id in fake.messages

    def reported(self, fake: AlibabaFake) -> list[tuple[str, str]]:
        return [(c.message_id, c.delivered) for c in fake.conversions]

    def webhook_request(
        self, fake: AlibabaFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        path = webhook_path("webhook-alibaba", self.key, "alibaba")
        token = "not-the-token" if forged else WEBHOOK_TOKEN
        return {
            "path": f"{path}?token={token}",
            "data": json.dumps(fake.receipt(message.provider_message_id, provider_status)),
            "content_type": "application/json",
        }
