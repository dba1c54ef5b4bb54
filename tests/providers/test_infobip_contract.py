"""The infobip backend passes the provider contract through the real infobip SDK, against
InfobipFake served under a path (``BASE_URL`` = ``http://127.0.0.1:PORT/infobip``), as the demo
serves it."""

from __future__ import annotations

import base64
import json
from typing import Any

from feedback_app.models import Message
from feedback_app.providers import SendResult
from feedback_app.states import Delivery
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path
from feedback_app.testing.infobip_fake import API_KEY, InfobipFake

BASIC_AUTH = "infobip:s3cret-report-password"


class TestInfobipContract(ProviderContract, WebhookContract):
    key = "infobip"
    reported_as = {"confirmed": "processKey"}
    credential_checks = {
        "API_KEY": "feedback_app.W140",
        "BASE_URL": "feedback_app.W141",
        "WEBHOOK_BASIC_AUTH": "feedback_app.W142",
    }
    environment = {"IB_API_KEY": None, "IB_BASE_URL": None}
    webhook_statuses = ("PENDING_ENROUTE", "DELIVERED_TO_HANDSET")
    webhook_delivery_status = Delivery.DELIVERED

    #: kind -> (HTTP status, Infobip's errorCode).
    ERRORS = {
        "throttling": (429, "E429"),
        "server_error": (500, "E500"),
        "validation": (400, "E400"),
        "auth": (401, "E401"),
        "not_found": (404, "E404"),
    }

    def make_fake(self) -> InfobipFake:
        return InfobipFake(base_path="/infobip")

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "API_KEY": API_KEY,
            "BASE_URL": url + "/infobip",
            "FROM": "InfoSMS",
            "WEBHOOK_BASIC_AUTH": BASIC_AUTH,
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: InfobipFake, kind: str, message: str) -> str:
        status, code = self.ERRORS[kind]
        fake.fail_next(1, status=status, code=code, message=message)
        return code

    def feedback_requested(self, fake: InfobipFake, result: SendResult) -> bool:
        return fake.messages[result.provider_message_id].tracking

    def reported(self, fake: InfobipFake) -> list[tuple[str, str]]:
        # The conversion call carries no value: each one the fake accepted answered a processKey.
        return [(c.message_id, "processKey") for c in fake.conversions if c.process_key]

    def webhook_request(
        self, fake: InfobipFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        body = fake.receipt(message.provider_message_id, provider_status)
        credentials = "infobip:not-the-password" if forged else BASIC_AUTH
        token = base64.b64encode(credentials.encode()).decode()
        return {
            "path": webhook_path("webhook-infobip", self.key, "infobip"),
            "data": json.dumps(body),
            "content_type": "application/json",
            "headers": {"Authorization": f"Basic {token}"},
        }
