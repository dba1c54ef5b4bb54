"""Telesign's Transaction Callback Service: signature check and ``status.code`` -> delivery status.

Telesign POSTs a JSON delivery report per status change to the ``callback_url`` of the send (or
the account's callback URL), signed in ``Authorization: TSA <customer id>:<signature>`` and, the
signature alone, ``X-TS-Authorization``: base64 of HMAC-SHA256 over the raw body with the
base64-decoded API key. Telesign retries a callback not answered 200 (four attempts), so a report
may arrive twice; ``services.record_delivery`` records it once and only moves a message up.

The telesign SDK is imported where it is used: the URLconf imports this module in projects
installed without the telesign extra.
"""

from __future__ import annotations

import binascii
import logging
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from ..providers.base import StatusUpdate, get_provider
from .base import WebhookError, WebhookView, json_body

logger = logging.getLogger(__name__)

SIGNATURE_SCHEME = "TSA"


def parse_authorization(value: str) -> tuple[str | None, str]:
    """(customer id, signature) of ``TSA <customer id>:<signature>``; (None, value) for a bare
    signature (``X-TS-Authorization``)."""
    scheme, _, credentials = value.strip().partition(" ")
    if scheme.upper() == SIGNATURE_SCHEME and credentials:
        customer_id, _, signature = credentials.rpartition(":")
        return customer_id or None, signature.strip()
    return None, value.strip()


class TelesignWebhookView(WebhookView):
    """The callback URL given to Telesign (``callback_url``, or the account's callback URL)."""

    default_provider = "telesign"

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from telesign.util import verify_telesign_callback_signature

        from ..providers.telesign import TelesignProvider

        backend = get_provider(provider)
        if not isinstance(backend, TelesignProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not a Telesign backend"
            )
        header = request.headers.get("Authorization") or request.headers.get("X-TS-Authorization")
        if not header:
            raise WebhookError(401, "no Authorization header")
        customer_id, signature = parse_authorization(header)
        if customer_id is not None and customer_id != backend.customer_id:
            raise WebhookError(
                403, "invalid Authorization", detail="signed for another customer id"
            )
        api_key = backend.api_key
        if not api_key:
            raise WebhookError(
                403, "invalid Authorization", detail="no API_KEY to check the signature with"
            )
        try:
            body = request.body.decode("utf-8")
            valid = verify_telesign_callback_signature(api_key, signature, body)
        except (UnicodeDecodeError, binascii.Error, ValueError) as exc:
            # A body that is not UTF-8, or an API_KEY that is not base64: nothing can be checked.
            raise WebhookError(403, "invalid Authorization", detail=type(exc).__name__) from exc
        if not valid:
            raise WebhookError(403, "invalid Authorization")

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from ..providers.telesign import status_update

        payload = json_body(request)
        if (
            not isinstance(payload, dict)
            or not payload.get("reference_id")
            or not isinstance(payload.get("status"), dict)
        ):
            raise WebhookError(400, "not a transaction callback (no reference_id/status)")
        update = status_update(payload)
        if update is None:
            logger.info(
                "feedback_app: %s callback with status %r, ignored",
                provider,
                payload["status"].get("code"),
            )
            return []
        return [update]
