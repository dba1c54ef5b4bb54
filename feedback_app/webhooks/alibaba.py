"""Alibaba Cloud SMS's status reports (SmsReport, HTTP batch push, international).

Alibaba pushes a JSON array of reports (``To``, ``Status``, ``MessageId``, ``TaskId``,
``SendDate``, ``ReceiveDate``, ``ErrorCode``, ``ErrorDescription``, ``SmsSize``) to the one
receiving URL configured in the SMS console, and wants HTTP 200 with ``{"code": 0, ...}``; it
tries three times. The push carries **no signature** and no credentials: what authenticates it
is a secret only Alibaba and this site know, the provider's ``WEBHOOK_TOKEN``, which the URL
configured in the console carries as ``?token=...``. A request without the right token is
refused (403) and changes nothing. Reports may come twice or out of order;
``services.record_delivery`` only moves a message up.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from ..providers.base import StatusUpdate, get_provider
from .base import WebhookError, WebhookView, json_body

logger = logging.getLogger(__name__)

#: The query parameter carrying ``WEBHOOK_TOKEN``.
TOKEN_PARAMETER = "token"  # noqa: S105 (a parameter name, not a secret)

#: Report fields kept in the delivery event's detail (never ``To``: a recipient in clear).
DETAIL_FIELDS: dict[str, str] = {
    "ErrorCode": "error_code",
    "ErrorDescription": "error_description",
    "SmsSize": "sms_size",
    "SendDate": "send_date",
}


class AlibabaWebhookView(WebhookView):
    """The receiving URL set for "HTTP batch push" in the SMS console (international)."""

    default_provider = "alibaba"

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        from ..providers.alibaba import AlibabaProvider

        backend = get_provider(provider)
        if not isinstance(backend, AlibabaProvider):
            raise WebhookError(
                404, "not found", detail=f"provider {provider!r} is not an Alibaba backend"
            )
        expected = config.get("WEBHOOK_TOKEN") or ""
        if not expected:
            raise WebhookError(403, "forbidden", detail="no WEBHOOK_TOKEN to check the push with")
        given = request.GET.get(TOKEN_PARAMETER, "")
        if not hmac.compare_digest(given.encode(), str(expected).encode()):
            raise WebhookError(403, "forbidden", detail=f"wrong or missing ?{TOKEN_PARAMETER}=")

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        from ..providers.alibaba import delivery_status, parse_date

        reports = json_body(request)
        if isinstance(reports, dict):
            reports = [reports]
        if not isinstance(reports, list) or not all(isinstance(r, dict) for r in reports):
            raise WebhookError(400, "not an SmsReport push (a JSON array of reports)")
        updates = []
        for report in reports:
            message_id, raw = report.get("MessageId"), report.get("Status")
            if not isinstance(message_id, str) or not message_id or raw in (None, ""):
                raise WebhookError(400, "a report without MessageId or Status")
            raw = str(raw)
            status = delivery_status(raw)
            if status is None:
                logger.info("feedback_app: %s SmsReport with Status %r, ignored", provider, raw)
                continue
            detail = {
                name: str(report[field])
                for field, name in DETAIL_FIELDS.items()
                if report.get(field) not in (None, "")
            }
            task_id = report.get("TaskId")
            updates.append(
                StatusUpdate(
                    provider_message_id=message_id,
                    delivery_status=status,
                    provider_status=raw,
                    at=parse_date(report.get("ReceiveDate")),
                    detail=detail,
                    # TaskId is our message id (set at send): finds a message whose send has
                    # not recorded Alibaba's MessageId yet.
                    message_id=task_id if isinstance(task_id, str) and task_id else None,
                )
            )
        return updates

    def success_response(self) -> HttpResponse:
        # Alibaba retries unless the answer is 200 with a numeric "code".
        return JsonResponse({"code": 0, "msg": "success"})
