"""Infobip's SMS delivery reports: HTTP basic auth, then ``results[].status`` -> delivery status.

Infobip does not sign delivery reports. What it offers is authentication configured on the
Infobip side (a notification profile's security settings of type BASIC, HMAC or OAUTH; mutual
TLS) and its published IP ranges. This webhook requires HTTP basic auth with the provider's
``WEBHOOK_BASIC_AUTH`` ("user:password"), compared in constant time; without that setting it
refuses every report. A report body is ``{"results": [...]}``, one entry per message (the
SDK's ``SmsDeliveryReport``); reports may come twice or out of order, and
``services.record_delivery`` only moves a message up.

The infobip SDK is imported where it is used: the URLconf imports this module in projects
installed without the infobip extra.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest

from ..providers.base import StatusUpdate, get_provider
from .base import WebhookError, WebhookView, json_body

logger = logging.getLogger(__name__)

#: Asks for the credentials again: a client that sends basic auth only when challenged.
CHALLENGE = {"WWW-Authenticate": 'Basic realm="feedback_app"'}


class InfobipWebhookView(WebhookView):
    """The delivery report URL (``webhooks.delivery.url`` of each message, or a subscription's
    notification profile)."""

    default_provider = "infobip"

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from ..providers.infobip import InfobipProvider

        backend = get_provider(provider)
        if not isinstance(backend, InfobipProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not an Infobip backend"
            )
        expected = backend.webhook_basic_auth
        if not expected:
            raise WebhookError(403, "forbidden", detail="WEBHOOK_BASIC_AUTH is not set")
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        given = b""
        if scheme.lower() == "basic":
            try:
                given = base64.b64decode(encoded.strip(), validate=True)
            except (binascii.Error, ValueError):
                given = b""
        if not hmac.compare_digest(given, expected.encode()):
            raise WebhookError(401, "missing or wrong basic auth credentials", CHALLENGE)

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from infobip_api_client.models import SmsDeliveryReport
        from pydantic import ValidationError

        from ..providers.infobip import error_detail, status_of

        body = json_body(request)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            raise WebhookError(400, "not a delivery report (no results)")
        updates = []
        for item in results:
            try:
                report = SmsDeliveryReport.from_dict(item)
            except (ValidationError, TypeError, ValueError):
                # One entry Infobip shaped differently (a new status group) does not cost the
                # others: the rest of the batch is applied, and Infobip does not resend it.
                logger.warning("feedback_app: %s delivery report entry not understood", provider)
                continue
            if report is None or not report.message_id:
                continue
            status = status_of(report.status)
            if status is None:
                logger.info("feedback_app: %s report with an unknown status, ignored", provider)
                continue
            detail = error_detail(report.error)
            if report.mcc_mnc:
                detail["mcc_mnc"] = report.mcc_mnc
            updates.append(
                StatusUpdate(
                    provider_message_id=report.message_id,
                    delivery_status=status[0],
                    provider_status=status[1],
                    at=report.done_at,
                    detail=detail,
                    # Our public id is the messageId we sent: finds the message either way.
                    message_id=report.message_id,
                )
            )
        return updates
