"""Twilio's message status callback: signature check and ``MessageStatus`` -> delivery status.

Twilio signs each callback in ``X-Twilio-Signature``: HMAC-SHA1 with the account's Auth Token, or,
when ``X-Twilio-Webhooks-Signature-Settings`` names a SharedKey, the HMAC that header names with
that key's secret (``WEBHOOK_SHARED_KEYS``), over the URL Twilio called and every POST parameter.
Callbacks may arrive out of order or twice; ``services.record_delivery`` only moves a message up.

The twilio SDK is imported where it is used: the URLconf imports this module in projects
installed without the twilio extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from ..providers.base import StatusUpdate, get_provider
from .base import WebhookError, WebhookView, public_url

logger = logging.getLogger(__name__)

#: Callback parameters kept in the delivery event's detail (never ``To``/``From``/``Body``: they
#: would store a recipient in clear). Twilio adds parameters without notice; others are dropped.
DETAIL_PARAMETERS: dict[str, str] = {
    "ErrorCode": "error_code",
    #: When the carrier's receipt was made (YYMMDDhhmm), on most SMS delivered/undelivered.
    "RawDlrDoneDate": "raw_dlr_done_date",
    "ChannelStatusMessage": "channel_status_message",
    "ChannelPrefix": "channel_prefix",
    "EventType": "event_type",
    "MessagingServiceSid": "messaging_service_sid",
}


class TwilioWebhookView(WebhookView):
    """The status callback URL given to Twilio (``StatusCallback``)."""

    default_provider = "twilio"

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from twilio.request_validator import (
            HMAC_SHA1,
            SIGNATURE_HEADER,
            SIGNATURE_SETTINGS_HEADER,
            RequestValidator,
            get_signature_algorithm,
        )

        from ..providers.twilio import TwilioProvider

        backend = get_provider(provider)
        if not isinstance(backend, TwilioProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not a Twilio backend"
            )
        signature = request.headers.get(SIGNATURE_HEADER)
        if not signature:
            raise WebhookError(403, f"no {SIGNATURE_HEADER} header")
        signature_settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
        if signature_settings:
            key_id = _setting(signature_settings, "key")
            secret = backend.shared_key(key_id)
            if not secret:
                raise WebhookError(
                    403,
                    f"invalid {SIGNATURE_HEADER}",
                    detail=f"SharedKey {key_id!r} is not in WEBHOOK_SHARED_KEYS",
                )
            algorithm = get_signature_algorithm(signature_settings)
        else:
            secret, algorithm = backend.auth_token, HMAC_SHA1
            if not secret:
                raise WebhookError(
                    403,
                    f"invalid {SIGNATURE_HEADER}",
                    detail="no AUTH_TOKEN to check the signature with",
                )
        # All POST parameters, as received: Twilio signs every one, including ones added later.
        if not RequestValidator(secret).validate(
            public_url(request), request.POST, signature, algorithm=algorithm
        ):
            raise WebhookError(403, f"invalid {SIGNATURE_HEADER}")

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from ..providers.twilio import SUPERSEDES, delivery_status

        # SmsSid/SmsStatus are the older names Twilio still sends alongside.
        sid = request.POST.get("MessageSid") or request.POST.get("SmsSid")
        raw = request.POST.get("MessageStatus") or request.POST.get("SmsStatus")
        if not sid or not raw:
            raise WebhookError(400, "not a message status callback (no MessageSid/MessageStatus)")
        status = delivery_status(raw)
        if status is None:
            logger.info("feedback_app: %s status callback with status %r, ignored", provider, raw)
            return []
        detail = {
            name: request.POST[parameter]
            for parameter, name in DETAIL_PARAMETERS.items()
            if request.POST.get(parameter)
        }
        return [
            StatusUpdate(
                provider_message_id=sid,
                delivery_status=status,
                provider_status=raw,
                detail=detail,
                supersedes=SUPERSEDES.get(raw, frozenset()),
            )
        ]


def _setting(header: str, name: str) -> str:
    """The value of ``name`` in a ``key=...,algorithm=...`` header; "" when absent."""
    for part in header.split(","):
        key, separator, value = part.partition("=")
        if separator and key.strip() == name:
            return value.strip()
    return ""
