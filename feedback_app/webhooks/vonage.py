"""Vonage SMS API delivery receipts: signature check and receipt ``status`` -> delivery status.

Vonage calls the per-message ``callback`` (or the account's delivery receipt webhook) with GET or
POST, form or JSON, as the account's webhook settings say. With signed webhooks (enabled by
Vonage support) every receipt carries ``timestamp``, ``nonce`` and ``sig``: the parameters but
``sig``, sorted, as ``&key=value`` with ``&`` and ``=`` in values made ``_``, hashed with the
account's signature secret: MD5 of that string and the secret (``md5hash``, the default), or an
HMAC keyed with the secret (``md5``, ``sha1``, ``sha256``, ``sha512``). The HMACs are checked with
the SDK's ``vonage_http_client.Auth.check_signature``; v4 of the SDK has no ``md5hash``, so it is
computed here the way v3 of the SDK did. Unsigned receipts are refused.

Receipts may arrive out of order or twice; ``services.record_delivery`` only moves a message up.
A long message's parts each get receipts with their own ``messageId``; ``client-ref`` (our id)
finds the message for all of them.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.http import HttpRequest, HttpResponse

from ..providers.base import StatusUpdate, get_provider
from .base import WebhookError, WebhookView, json_body

logger = logging.getLogger(__name__)

#: Receipt parameters kept in the delivery event's detail (never ``msisdn`` or ``to``: the
#: recipient's number and our sender).
DETAIL_PARAMETERS: dict[str, str] = {
    "err-code": "error_code",
    "network-code": "network_code",
    "price": "price",
    #: When the carrier's receipt was made (YYMMDDhhmm).
    "scts": "scts",
}

#: The receipt's ``message-timestamp`` format (UTC).
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"


def canonical(params: dict[str, Any]) -> str:
    """The string Vonage signs: every parameter but ``sig``, sorted by name, as ``&name=value``
    with ``&`` and ``=`` in values replaced by ``_``."""
    pieces = []
    for name in sorted(params):
        if name == "sig":
            continue
        value = params[name]
        if isinstance(value, str):
            value = value.replace("&", "_").replace("=", "_")
        pieces.append(f"&{name}={value}")
    return "".join(pieces)


def signature(params: dict[str, Any], secret: str, method: str) -> str:
    """The ``sig`` of ``params`` (lower-case hex) under ``method`` (``md5hash`` or an HMAC's
    hash name); what the fakes and tests sign with. The webhook checks HMACs with the SDK."""
    text = canonical(params).encode()
    if method == "md5hash":
        return hashlib.md5(text + secret.encode()).hexdigest()  # noqa: S324 (Vonage's scheme)
    return hmac.new(secret.encode(), text, getattr(hashlib, method)).hexdigest()


def check_signature(params: dict[str, Any], secret: str, method: str, api_key: str) -> bool:
    """Whether ``params['sig']`` is Vonage's signature of ``params`` with ``secret``."""
    sig = params.get("sig")
    if not isinstance(sig, str) or not sig or not params.get("timestamp"):
        # Without a timestamp the SDK would sign one of its own making.
        return False
    if method == "md5hash":
        expected = signature(params, secret, method)
        return hmac.compare_digest(sig.lower(), expected)
    from vonage_http_client import Auth

    auth = Auth(api_key=api_key or "-", signature_secret=secret, signature_method=method)
    return auth.check_signature(dict(params))


class VonageWebhookView(WebhookView):
    """The delivery receipt webhook (the ``callback`` given with each message)."""

    default_provider = "vonage"
    #: Vonage calls with GET or POST, as the account's webhook settings say.
    http_method_names = ["get", "post"]

    def get(self, request: HttpRequest, provider: str | None = None) -> HttpResponse:
        return self.post(request, provider)

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from ..providers.vonage import (
            SIGNATURE_METHODS,
            VonageProvider,
            setting,
            signature_method,
        )

        backend = get_provider(provider)
        if not isinstance(backend, VonageProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not a Vonage backend"
            )
        secret = setting(config, "SIGNATURE_SECRET")
        method = signature_method(config)
        if not secret or method not in SIGNATURE_METHODS:
            raise WebhookError(
                403,
                "invalid sig",
                detail="no SIGNATURE_SECRET (or an unknown SIGNATURE_METHOD) to check it with",
            )
        params = _params(request)
        if "sig" not in params:
            raise WebhookError(403, "no sig: the receipt is not signed")
        if not check_signature(params, secret, method, setting(config, "API_KEY") or ""):
            raise WebhookError(403, "invalid sig")

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from ..providers.vonage import SUPERSEDES, delivery_status

        params = _params(request)
        message_id, raw = params.get("messageId"), params.get("status")
        if not isinstance(message_id, str) or not message_id or not isinstance(raw, str) or not raw:
            raise WebhookError(400, "not a delivery receipt (no messageId/status)")
        status = delivery_status(raw)
        if status is None:
            logger.info("feedback_app: %s receipt with status %r, ignored", provider, raw)
            return []
        detail = {
            name: str(params[parameter])
            for parameter, name in DETAIL_PARAMETERS.items()
            if params.get(parameter) not in (None, "")
        }
        client_ref = params.get("client-ref")
        return [
            StatusUpdate(
                provider_message_id=message_id,
                delivery_status=status,
                provider_status=raw,
                at=_timestamp(params.get("message-timestamp")),
                detail=detail,
                supersedes=SUPERSEDES.get(raw, frozenset()),
                message_id=client_ref if isinstance(client_ref, str) and client_ref else None,
            )
        ]


def _params(request: HttpRequest) -> dict[str, Any]:
    """The receipt's parameters: the query string (GET), the JSON body or the form (POST)."""
    cached = getattr(request, "_vonage_params", None)
    if cached is not None:
        return cached
    if request.method == "GET":
        params: Any = request.GET.dict()
    elif request.content_type == "application/json":
        params = json_body(request)
        if not isinstance(params, dict):
            raise WebhookError(400, "body is not a JSON object")
    else:
        params = request.POST.dict()
    request._vonage_params = params  # type: ignore[attr-defined]
    return params


def _timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
