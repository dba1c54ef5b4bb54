"""The plivo backend passes the provider contract through the real plivo client, against
PlivoFake served under a path (``/plivo``), as the demo serves it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from feedback_app.models import Message
from feedback_app.providers import SendResult
from feedback_app.states import Delivery
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path
from feedback_app.testing.plivo_fake import AUTH_ID, AUTH_TOKEN, PlivoFake

#: kind -> HTTP status; Plivo's API errors carry no code of their own, so the status is it.
ERRORS = {
    "throttling": 429,
    "server_error": 503,
    "validation": 400,
    "auth": 401,
    "not_found": 404,
}


class TestPlivoContract(ProviderContract, WebhookContract):
    key = "plivo"
    reported_as = {
        "confirmed": "CONVERTED",
        "failed": "NOT_CONVERTED",
        "superseded": "CONVERTED_WITH_OTHERS",
    }
    credential_checks = {"AUTH_ID": "feedback_app.W120", "AUTH_TOKEN": "feedback_app.W121"}
    environment = {"PLIVO_AUTH_ID": None, "PLIVO_AUTH_TOKEN": None}
    webhook_statuses = ("sent", "delivered")
    webhook_delivery_status = Delivery.DELIVERED

    def make_fake(self) -> PlivoFake:
        return PlivoFake()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "AUTH_ID": AUTH_ID,
            "AUTH_TOKEN": AUTH_TOKEN,
            "BASE_URL": url + "/plivo",
            "SRC": "14155550100",
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: PlivoFake, kind: str, message: str) -> str:
        fake.fail_next(1, status=ERRORS[kind], message=message)
        return str(ERRORS[kind])

    def feedback_requested(self, fake: PlivoFake, result: SendResult) -> bool:
        return fake.messages[result.provider_message_id].trackable

    def reported(self, fake: PlivoFake) -> list[tuple[str, str]]:
        return [(c.message_uuid, c.status) for c in fake.conversions]

    def webhook_request(
        self, fake: PlivoFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        path = webhook_path("webhook-plivo", self.key, "plivo")
        params = fake.callback_params(message.provider_message_id, provider_status)
        token = "not-the-auth-token" if forged else None
        headers = fake.signed_headers(f"http://testserver{path}", params, auth_token=token)
        return {
            "path": path,
            "data": urlencode(params),
            "content_type": "application/x-www-form-urlencoded",
            "headers": headers,
        }
