"""Plivo's message status callback: signature check and ``Status`` -> delivery status.

Plivo posts form data to the ``url`` a message was sent with, signed with the account's Auth
Token. ``X-Plivo-Signature-V3`` is HMAC-SHA256 over the URL, the POST parameters (sorted) and
``X-Plivo-Signature-V3-Nonce``; ``X-Plivo-Signature-V2``, which Plivo's messaging pages document
for SMS callbacks, covers the URL and ``X-Plivo-Signature-V2-Nonce`` only. V3 is checked when
present; V2 otherwise, unless ``WEBHOOK_SIGNATURES`` leaves it out. Both are checked with the
SDK's own ``plivo.utils`` functions. Callbacks may arrive out of order or twice;
``services.record_delivery`` only moves a message up.

The plivo SDK is imported where it is used: the URLconf imports this module in projects
installed without the plivo extra.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from ..providers.base import StatusUpdate, get_provider
from .base import WebhookError, WebhookView, public_url

logger = logging.getLogger(__name__)

V3_SIGNATURE = "X-Plivo-Signature-V3"
V3_NONCE = "X-Plivo-Signature-V3-Nonce"
V2_SIGNATURE = "X-Plivo-Signature-V2"
V2_NONCE = "X-Plivo-Signature-V2-Nonce"

#: Callback parameters kept in the delivery event's detail (never ``To``/``From``: they would
#: store a recipient in clear).
DETAIL_PARAMETERS: dict[str, str] = {
    "ErrorCode": "error_code",
    "MCC": "mcc",
    "MNC": "mnc",
    "Units": "units",
    "Sequence": "sequence",
    "PowerpackUUID": "powerpack_uuid",
}


class PlivoWebhookView(WebhookView):
    """The status callback URL given to Plivo (the send's ``url``)."""

    default_provider = "plivo"

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from plivo.utils import validate_signature, validate_v3_signature

        from ..providers.plivo import PlivoProvider

        backend = get_provider(provider)
        if not isinstance(backend, PlivoProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not a Plivo backend"
            )
        token = backend.auth_token
        if not token:
            raise WebhookError(
                403, "invalid signature", detail="no AUTH_TOKEN to check the signature with"
            )
        allowed = backend.webhook_signatures
        url = public_url(request)
        if "v3" in allowed and request.headers.get(V3_SIGNATURE):
            # Every POST parameter as received (lists: Plivo signs each value of a repeated one).
            params = {name: values for name, values in request.POST.lists()}
            valid = _checked(
                validate_v3_signature,
                method="POST",
                uri=url,
                nonce=request.headers.get(V3_NONCE, ""),
                auth_token=token,
                v3_signature=request.headers[V3_SIGNATURE],
                params=params,
            )
            if not valid:
                raise WebhookError(403, f"invalid {V3_SIGNATURE}")
        elif "v2" in allowed and request.headers.get(V2_SIGNATURE):
            valid = _checked(
                validate_signature,
                uri=url,
                nonce=request.headers.get(V2_NONCE, ""),
                signature=request.headers[V2_SIGNATURE],
                auth_token=token,
            )
            if not valid:
                raise WebhookError(403, f"invalid {V2_SIGNATURE}")
        else:
            raise WebhookError(403, f"no {' or '.join(_header(s) for s in allowed)} header")

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from ..providers.plivo import SUPERSEDES, delivery_status

        message_uuid = request.POST.get("MessageUUID")
        raw = request.POST.get("Status")
        if not message_uuid or not raw:
            raise WebhookError(400, "not a message status callback (no MessageUUID/Status)")
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
                provider_message_id=message_uuid,
                delivery_status=status,
                provider_status=raw,
                detail=detail,
                supersedes=SUPERSEDES.get(raw, frozenset()),
            )
        ]


def _header(scheme: str) -> str:
    return V3_SIGNATURE if scheme == "v3" else V2_SIGNATURE


def _checked(validate: Any, **arguments: Any) -> bool:
    """The SDK check's answer; False when it refuses its arguments (a nonce or signature that
    is not text, a URL it does not take)."""
    from plivo.exceptions import PlivoRestError

    try:
        return bool(validate(**arguments))
    except (PlivoRestError, ValueError, TypeError):
        return False
