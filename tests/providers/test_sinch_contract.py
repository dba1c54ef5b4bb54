"""The sinch backend passes the provider contract through the real sinch SDK against SinchFake."""

from __future__ import annotations

import json
from typing import Any

from feedback_app.models import Message
from feedback_app.providers import SendResult
from feedback_app.states import Delivery
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path
from feedback_app.testing.sinch_fake import API_TOKEN, SERVICE_PLAN_ID, SinchFake, sign_callback

WEBHOOK_SECRET = "contract-webhook-secret"  # noqa: S105 (a test credential)

#: Nothing from the machine running the tests.
SINCH_ENVIRONMENT: dict[str, str | None] = dict.fromkeys(
    [
        "SINCH_SERVICE_PLAN_ID",
        "SINCH_API_TOKEN",
        "SINCH_PROJECT_ID",
        "SINCH_KEY_ID",
        "SINCH_KEY_SECRET",
        "SINCH_SMS_REGION",
    ]
)


class TestSinchContract(ProviderContract, WebhookContract):
    key = "sinch"
    reported_as = {"confirmed": "delivered"}
    credential_checks = {
        "SERVICE_PLAN_ID": "feedback_app.W130",
        "API_TOKEN": "feedback_app.W130",
        "WEBHOOK_SECRET": "feedback_app.W131",
    }
    environment = SINCH_ENVIRONMENT
    webhook_statuses = ("Dispatched", "Delivered")
    webhook_delivery_status = Delivery.DELIVERED

    #: kind -> (HTTP status, Sinch's code).
    ERRORS = {
        "throttling": (429, "RESOURCE_EXHAUSTED"),
        "server_error": (503, "UNAVAILABLE"),
        "validation": (400, "syntax_invalid_parameter_format"),
        "auth": (401, "UNAUTHENTICATED"),
        "not_found": (404, "NOT_FOUND"),
    }

    def make_fake(self) -> SinchFake:
        return SinchFake()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "SERVICE_PLAN_ID": SERVICE_PLAN_ID,
            "API_TOKEN": API_TOKEN,
            # A path, as the demo serves every fake on one port.
            "BASE_URL": url + "/sinch",
            "FROM": "+12065550100",
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: SinchFake, kind: str, message: str) -> str:
        status, code = self.ERRORS[kind]
        fake.fail_next(1, status=status, code=code, text=message)
        return code

    def feedback_requested(self, fake: SinchFake, result: SendResult) -> bool:
        return fake.batches[result.provider_message_id].feedback_enabled

    def reported(self, fake: SinchFake) -> list[tuple[str, str]]:
        # An empty recipient list is feedback that every recipient of the batch received it.
        return [(batch_id, "delivered") for batch_id, recipients in fake.feedback if not recipients]

    def webhook_request(
        self, fake: SinchFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        body = json.dumps(fake.report(message.provider_message_id, provider_status)).encode()
        headers = sign_callback(body, "not-the-secret" if forged else WEBHOOK_SECRET)
        return {
            "path": webhook_path("webhook-sinch", self.key, "sinch"),
            "data": body,
            "content_type": "application/json",
            "headers": headers,
        }
