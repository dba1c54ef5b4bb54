"""Sinch SMS delivery report callbacks: authentication and ``status`` -> delivery status.

Sinch posts a JSON delivery report to the batch's ``callback_url``: with ``per_recipient``
reports one ``recipient_delivery_report_sms`` per status change (``batch_id``, ``status``,
``code``, ``at``, our ``client_reference``). How Sinch authenticates its callbacks is set up on
the service plan by Sinch (docs/providers/sinch.md); this view checks what the provider's settings
name, each one that is set:

- ``WEBHOOK_SECRET``: the HMAC signature (``x-sinch-webhook-signature``, base64 HMAC-SHA256 of
  ``body.nonce.timestamp`` with the ``-nonce`` and ``-timestamp`` headers), verified with the
  SDK's ``SmsSinchEvent.validate_authentication_header``;
- ``WEBHOOK_BASIC_AUTH``: ``user:password`` provisioned in the callback URL.

With neither set every callback is refused. Reports may arrive out of order or twice;
``services.record_delivery`` only moves a message up. The sinch SDK is imported where it is used:
the URLconf imports this module in projects installed without the sinch extra.
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

#: Report types that carry one recipient's status, and those that carry a batch's counts.
RECIPIENT_REPORTS = frozenset({"recipient_delivery_report_sms", "recipient_delivery_report_mms"})
BATCH_REPORTS = frozenset({"delivery_report_sms", "delivery_report_mms"})
#: Inbound messages, if the service plan's callback URL points here too: acknowledged, ignored.
INBOUND = frozenset({"mo_text", "mo_binary", "mo_media"})


class SinchWebhookView(WebhookView):
    """The callback URL given to Sinch with each batch (``callback_url``)."""

    default_provider = "sinch"

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from sinch.domains.sms.sinch_events.v1.sms_sinch_event import SmsSinchEvent

        from ..providers.sinch import SinchProvider

        backend = get_provider(provider)
        if not isinstance(backend, SinchProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not a Sinch backend"
            )
        secret = config.get("WEBHOOK_SECRET")
        basic_auth = config.get("WEBHOOK_BASIC_AUTH")
        if not (secret or basic_auth):
            raise WebhookError(
                403, "callback not authenticated", detail="no WEBHOOK_SECRET or WEBHOOK_BASIC_AUTH"
            )
        if basic_auth and not _basic_auth_matches(request, basic_auth):
            raise WebhookError(
                401,
                "invalid credentials",
                {"WWW-Authenticate": 'Basic realm="feedback_app"'},
            )
        if secret:
            headers = {name.lower(): value for name, value in request.headers.items()}
            if not headers.get("x-sinch-webhook-signature"):
                raise WebhookError(403, "no x-sinch-webhook-signature header")
            try:
                valid = SmsSinchEvent(secret).validate_authentication_header(
                    headers=headers, json_payload=request.body
                )
            except (UnicodeDecodeError, LookupError):
                valid = False
            if not valid:
                raise WebhookError(403, "invalid x-sinch-webhook-signature")

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from sinch.domains.sms.sinch_events.v1.sms_sinch_event import SmsSinchEvent

        from ..providers.sinch import delivery_status, status_from_summary, status_name

        body = json_body(request)
        kind = body.get("type") if isinstance(body, dict) else None
        if kind in INBOUND:
            logger.info("feedback_app: %s callback of an inbound message, ignored", provider)
            return []
        if kind not in RECIPIENT_REPORTS | BATCH_REPORTS:
            raise WebhookError(400, "not a Sinch delivery report")
        try:
            report = SmsSinchEvent().parse_event(body)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise WebhookError(400, "malformed delivery report", detail=str(exc)[:200]) from exc
        if kind in BATCH_REPORTS:
            update = status_from_summary(report.batch_id, report.statuses)
            if update is None:
                return []
            return [_with_reference(update, report.client_reference)]
        status = delivery_status(report.status)
        if status is None:
            logger.info(
                "feedback_app: %s delivery report with status %r, ignored", provider, report.status
            )
            return []
        # Never ``recipient``: it is the number in clear.
        detail: dict[str, Any] = {"code": str(report.code)}
        if report.operator:
            detail["operator"] = report.operator
        if report.operator_status_at:
            detail["operator_status_at"] = report.operator_status_at.isoformat()
        return [
            StatusUpdate(
                provider_message_id=report.batch_id,
                delivery_status=status,
                provider_status=status_name(report.status) or report.status,
                at=report.at,
                detail=detail,
                message_id=report.client_reference,
            )
        ]


def _with_reference(update: StatusUpdate, client_reference: str | None) -> StatusUpdate:
    return StatusUpdate(
        provider_message_id=update.provider_message_id,
        delivery_status=update.delivery_status,
        provider_status=update.provider_status,
        detail=update.detail,
        message_id=client_reference,
    )


def _basic_auth_matches(request: HttpRequest, expected: str) -> bool:
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected.encode())
