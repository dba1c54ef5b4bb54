"""The ``vonage`` backend passes the provider contract through the real vonage SDK against
``VonageFake``, receipts signed as Vonage signs them."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from feedback_app.models import Message
from feedback_app.providers import SendResult
from feedback_app.states import Delivery
from feedback_app.testing.contract import ProviderContract, WebhookContract, webhook_path
from feedback_app.testing.vonage_fake import API_KEY, API_SECRET, SIGNATURE_SECRET, VonageFake

#: Nothing from the machine's Vonage configuration.
VONAGE_ENVIRONMENT: dict[str, str | None] = dict.fromkeys(
    [
        "VONAGE_API_KEY",
        "VONAGE_API_SECRET",
        "VONAGE_SIGNATURE_SECRET",
        "VONAGE_SIGNATURE_METHOD",
    ]
)


class TestVonageContract(ProviderContract, WebhookContract):
    key = "vonage"
    reported_as = {"confirmed": "true", "failed": "false"}
    credential_checks = {
        "API_KEY": "feedback_app.E110",
        "API_SECRET": "feedback_app.E111",
        "SIGNATURE_SECRET": "feedback_app.W112",
    }
    environment = VONAGE_ENVIRONMENT
    webhook_statuses = ("accepted", "delivered")
    webhook_delivery_status = Delivery.DELIVERED

    #: kind -> fail_next arguments and the code the error carries: the SMS API answers most
    #: errors with HTTP 200 and a per-message status; a wrong path is an HTTP 404.
    ERRORS: dict[str, tuple[dict[str, Any], str]] = {
        "throttling": ({"status": "1"}, "1"),
        "server_error": ({"status": "5"}, "5"),
        "validation": ({"status": "3"}, "3"),
        "auth": ({"status": "4"}, "4"),
        "not_found": ({"http_status": 404}, "404"),
    }

    def make_fake(self) -> VonageFake:
        return VonageFake()

    def provider_config(self, url: str, settings: Any) -> dict[str, Any]:
        return {
            "API_KEY": API_KEY,
            "API_SECRET": API_SECRET,
            "SIGNATURE_SECRET": SIGNATURE_SECRET,
            "SIGNATURE_METHOD": "md5hash",
            # The demo serves the fake under a path: the backend keeps it.
            "BASE_URL": url + "/vonage",
            "FROM": "AcmeOTP",
        }

    def timeout_config(self) -> dict[str, Any]:
        return {"TIMEOUT": 0.2}

    def fail_next(self, fake: VonageFake, kind: str, message: str) -> str:
        arguments, code = self.ERRORS[kind]
        fake.fail_next(1, message=message, **arguments)
        return code

    def feedback_requested(self, fake: VonageFake, result: SendResult) -> bool:
        # Vonage needs no opt-in at send (the account has the Conversion API or not); what
        # the send must carry to be tracked is our id (client-ref) and a receipt request.
        message = fake.messages[result.provider_message_id]
        return bool(message.client_ref) and message.status_report_req

    def reported(self, fake: VonageFake) -> list[tuple[str, str]]:
        return [(c.message_id, "true" if c.delivered else "false") for c in fake.conversions]

    def webhook_request(
        self, fake: VonageFake, message: Message, provider_status: str, *, forged: bool = False
    ) -> dict[str, Any]:
        secret = "not-the-signature-secret" if forged else SIGNATURE_SECRET
        params = fake.receipt(message.provider_message_id, provider_status, secret=secret)
        return {
            "path": webhook_path("webhook-vonage", self.key, "vonage"),
            "data": urlencode(params),
            "content_type": "application/x-www-form-urlencoded",
        }
