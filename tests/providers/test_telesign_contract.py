"""The telesign backend passes the provider contract, through the real telesign SDKs against
TelesignFake (feedback_app.testing.contract)."""

from __future__ import annotations

from typing import Any

from feedback_app.models import Message
from feedback_app.providers import SendResult
from feedback_app.states import Delivery
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path
from feedback_app.testing.telesign_fake import API_KEY, CUSTOMER_ID, TelesignFake

#: Not the fake's API key, base64 like a real one: what a forger signs with.
FORGED_API_KEY = "Zm9yZ2VkLWtleS1ub3QtdGVsZXNpZ24ncw=="


class TestTelesignContract(ProviderContract, WebhookContract):
    key = "telesign"
    reported_as = {"confirmed": "completion"}
    credential_checks = {"CUSTOMER_ID": "feedback_app.E150", "API_KEY": "feedback_app.E151"}
    environment = {"TELESIGN_CUSTOMER_ID": None, "TELESIGN_API_KEY": None}
    # Delivered to gateway, then delivered to handset.
    webhook_statuses = ("203", "200")
    webhook_delivery_status = Delivery.DELIVERED

    #: kind -> (HTTP status, Telesign's errors[].code).
    ERRORS = {
        "throttling": (429, -40007),
        "server_error": (503, -90001),
        "validation": (400, -10001),
        "auth": (401, -30006),
        "not_found": (404, -10001),
    }

    def make_fake(self) -> TelesignFake:
        return TelesignFake()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {"CUSTOMER_ID": CUSTOMER_ID, "API_KEY": API_KEY, "BASE_URL": url}

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: TelesignFake, kind: str, message: str) -> str:
        status, code = self.ERRORS[kind]
        fake.fail_next(1, status=status, code=code, description=message)
        return str(code)

    def feedback_requested(self, fake: TelesignFake, result: SendResult) -> bool:
        # A completion is taken for an SMS Verify transaction: one exists under this id.
        return result.provider_message_id in fake.transactions

    def reported(self, fake: TelesignFake) -> list[tuple[str, str]]:
        return [(reference_id, "completion") for reference_id in fake.completions]

    def webhook_request(
        self, fake: TelesignFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        body, headers = fake.callback(
            message.provider_message_id,
            int(provider_status),
            api_key=FORGED_API_KEY if forged else None,
        )
        return {
            "path": webhook_path("webhook-telesign", self.key, "telesign"),
            "data": body,
            "content_type": "application/json",
            "headers": {"Authorization": headers["Authorization"]},
        }
