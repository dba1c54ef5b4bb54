"""Sinch SMS backend (``sinch``): the ``sinch`` SDK's SMS REST API (XMS) with delivery feedback.

Each message is a batch of one recipient, sent with ``feedback_enabled=True``, a per-recipient
delivery report, the callback URL of ``webhooks/sinch.py`` and our public id as
``client_reference``. A conversion is reported with ``send_delivery_feedback(batch_id,
recipients=[])``: an empty list means every recipient of the batch, and the batch has only ours,
so the clear number (which is never stored) is not needed. Sinch takes only positive feedback.
Statuses arrive as recipient delivery reports on the webhook and can be fetched as the batch's
summary delivery report (``fetch_status``).

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]`` (docs/providers/sinch.md):
``SERVICE_PLAN_ID`` and ``API_TOKEN`` (Bearer), or ``PROJECT_ID``, ``KEY_ID`` and ``KEY_SECRET``
(OAuth), each else ``SINCH_<NAME>`` from the environment; ``REGION``; ``FROM``; ``CALLBACK_URL``;
``DELIVERY_REPORT``; ``WEBHOOK_SECRET`` and/or ``WEBHOOK_BASIC_AUTH``; ``TIMEOUT``; ``BASE_URL``
and ``AUTH_URL`` (a local fake).
"""

from __future__ import annotations

import logging
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from django.core.checks import CheckMessage, Error, Warning
from pydantic import ValidationError
from sinch import SinchClient
from sinch.core.clients.retry_configuration import RetryConfiguration
from sinch.core.enums import RetryPolicy
from sinch.core.exceptions import SinchException

from ..conf import app_settings
from ..states import DELIVERY_RANK, Channel, Delivery
from .base import (
    PermanentError,
    Provider,
    ProviderError,
    RetryableError,
    SendResult,
    StatusUpdate,
    webhook_url,
)

if TYPE_CHECKING:
    from ..models import Message

#: A recipient delivery report's ``status`` -> normalized delivery status. Sinch documents the
#: capitalized names (``Delivered``); the SDK's filter enum spells them in capitals
#: (``DELIVERED``), so lookups ignore case (``delivery_status``).
STATUSES: dict[str, str] = {
    #: Intermediate: queued in Sinch, dispatched at the account's rate.
    "Queued": Delivery.QUEUED,
    #: Intermediate: dispatched to and accepted by the SMSC (the carrier).
    "Dispatched": Delivery.SENT,
    "Delivered": Delivery.DELIVERED,
    #: Final: reached the SMSC, but no receipt came back or none could be read.
    "Unknown": Delivery.UNKNOWN,
    #: Final: aborted before reaching the SMSC (unroutable, internal error, parts limit...).
    "Aborted": Delivery.FAILED,
    #: Final: expired before it was handed to the SMSC.
    "Expired": Delivery.FAILED,
    #: Final: the SMSC refused it.
    "Rejected": Delivery.REJECTED,
    #: Final: cancelled by the sender before it reached the SMSC (a scheduled batch).
    "Cancelled": Delivery.REJECTED,
    #: Final: the carrier could not deliver it.
    "Failed": Delivery.UNDELIVERED,
    #: Final: deleted by a remote SMSC (invalid MSISDN, opted-out subscriber).
    "Deleted": Delivery.UNDELIVERED,
}

_BY_LOWER = {name.lower(): name for name in STATUSES}

#: Our outcome -> what the conversion call says: Sinch's feedback means "delivered to all
#: recipients of the batch" (``recipients: []``); there is no negative feedback.
FEEDBACK: dict[str, str] = {"confirmed": "delivered"}

#: ``delivery_report`` values the API takes (the SDK's ``DeliveryReportType``).
DELIVERY_REPORTS = frozenset({"none", "summary", "full", "per_recipient", "per_recipient_final"})

#: Keyword arguments of ``batches.send_sms`` a caller may pass through ``send(**options)``.
#: Those this backend sets itself (to, from_, body, feedback_enabled, client_reference) are not
#: among them. ``parameters`` is left out: it is keyed by the recipient's number.
OPTIONS: frozenset[str] = frozenset(
    {
        "delivery_report",
        "event_destination_target",
        "send_at",
        "expire_at",
        "flash_message",
        "max_number_of_message_parts",
        "truncate_concat",
        "from_ton",
        "from_npi",
    }
)

#: Seconds each HTTP request may take (connect and read); the SDK's default is 10 as well.
DEFAULT_TIMEOUT = 10.0
DEFAULT_REGION = "us"
DEFAULT_DELIVERY_REPORT = "per_recipient"

#: The logger the SDK is given. At DEBUG it logs every request with its headers (the Bearer
#: token) and body (the message and the number): kept at INFO unless a site sets its level.
SDK_LOGGER = "feedback_app.providers.sinch.sdk"

#: The settings of each way of authenticating, and their environment variables.
SERVICE_PLAN_CREDENTIALS = {
    "SERVICE_PLAN_ID": "SINCH_SERVICE_PLAN_ID",
    "API_TOKEN": "SINCH_API_TOKEN",
}
PROJECT_CREDENTIALS = {
    "PROJECT_ID": "SINCH_PROJECT_ID",
    "KEY_ID": "SINCH_KEY_ID",
    "KEY_SECRET": "SINCH_KEY_SECRET",
}


def delivery_status(provider_status: str) -> str | None:
    """The normalized status of a Sinch delivery report status; None for one not applied."""
    name = status_name(provider_status)
    return STATUSES[name] if name else None


def status_name(provider_status: str) -> str | None:
    """The documented spelling (``Delivered``) of a status in any case (``DELIVERED``)."""
    return _BY_LOWER.get((provider_status or "").lower())


def setting(config: dict[str, Any], name: str, environment_variable: str | None = None) -> Any:
    """``config[name]``, else the environment variable, else None."""
    value = config.get(name)
    if value in (None, "") and environment_variable:
        value = os.environ.get(environment_variable) or None
    return value


def _credentials(config: dict[str, Any], names: dict[str, str]) -> dict[str, str | None]:
    return {name: setting(config, name, variable) for name, variable in names.items()}


def error_from_exception(exc: Exception) -> ProviderError:
    """The provider error for what a Sinch SDK call raised, keeping Sinch's code and text.

    HTTP 429, 5xx, timeouts and connection errors are retryable; other 4xx (validation,
    authentication, not found) and client-side errors are permanent.
    """
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return RetryableError(str(exc), code=type(exc).__name__)
    if isinstance(exc, requests.RequestException):
        return PermanentError(str(exc), code=type(exc).__name__)
    if isinstance(exc, SinchException):
        status = exc.response_status_code
        code, text = _error_body(getattr(exc.http_response, "body", None))
        if status is None or not exc.is_from_server:
            # Refused by the SDK before any request (missing credentials...).
            return PermanentError(str(exc), code=code or "client_error")
        if status == 429 or status >= 500:
            return RetryableError(text or str(exc), code=code or status)
        return PermanentError(text or str(exc), code=code or status)
    # pydantic refusing a field, or the SDK refusing its configuration (no region...).
    return PermanentError(str(exc), code=type(exc).__name__)


def _error_body(body: Any) -> tuple[str, str]:
    """(code, text) of an error answer: the XMS shape ``{"code", "text"}`` (400 and 403), or
    the ``{"error": {"code", "message", "status"}}`` shape Sinch's newer gateways answer."""
    if not isinstance(body, dict):
        return "", ""
    if isinstance(body.get("code"), str):
        return body["code"], str(body.get("text") or body.get("message") or "")
    error = body.get("error")
    if isinstance(error, dict):
        code = error.get("status") or error.get("code") or ""
        return str(code), str(error.get("message") or "")
    if "error_description" in body or "error" in body:  # OAuth token endpoint
        return str(body.get("error") or ""), str(body.get("error_description") or "")
    return "", ""


class SinchProvider(Provider):
    """``sms.batches.send_sms(feedback_enabled=True)``; ``send_delivery_feedback`` on confirm."""

    reports = frozenset(FEEDBACK)
    channels = frozenset({Channel.SMS})
    #: ``Dispatched`` stays when the carrier sends no receipt, and ``Queued`` when a callback
    #: was lost; the batch's delivery report may know more.
    sync_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        plan = _credentials(config, SERVICE_PLAN_CREDENTIALS)
        project = _credentials(config, PROJECT_CREDENTIALS)
        if not (all(plan.values()) or all(project.values())):
            missing = [name for name, value in {**plan, **project}.items() if not value]
            messages.append(
                Warning(
                    f"Provider {key!r} has no complete Sinch credentials (missing: "
                    f"{', '.join(missing)}): every send will fail.",
                    hint="Set SERVICE_PLAN_ID and API_TOKEN (or SINCH_SERVICE_PLAN_ID and "
                    "SINCH_API_TOKEN), or PROJECT_ID, KEY_ID and KEY_SECRET.",
                    id="feedback_app.W130",
                )
            )
        if not (config.get("WEBHOOK_SECRET") or config.get("WEBHOOK_BASIC_AUTH")):
            messages.append(
                Warning(
                    f"Provider {key!r} has no WEBHOOK_SECRET and no WEBHOOK_BASIC_AUTH: every "
                    "delivery report will be refused.",
                    hint="Ask Sinch to sign the service plan's callbacks (HMAC) and set "
                    "WEBHOOK_SECRET, or give the callback URL basic auth and set "
                    "WEBHOOK_BASIC_AUTH ('user:password'); see docs/providers/sinch.md.",
                    id="feedback_app.W131",
                )
            )
        if not (config.get("CALLBACK_URL") or app_settings.PUBLIC_URL):
            messages.append(
                Warning(
                    f"Provider {key!r} sends no callback URL: delivery reports go to the service "
                    "plan's default callback URL, if it has one.",
                    hint="Set FEEDBACK_APP['PUBLIC_URL'] or the provider's CALLBACK_URL.",
                    id="feedback_app.W132",
                )
            )
        report = config.get("DELIVERY_REPORT", DEFAULT_DELIVERY_REPORT)
        if report not in DELIVERY_REPORTS:
            messages.append(
                Error(
                    f"Provider {key!r}: DELIVERY_REPORT {report!r} is not one Sinch takes.",
                    hint=f"Use one of {', '.join(sorted(DELIVERY_REPORTS))}.",
                    id="feedback_app.E130",
                )
            )
        elif report not in ("per_recipient", "per_recipient_final"):
            messages.append(
                Warning(
                    f"Provider {key!r}: DELIVERY_REPORT {report!r} sends no per-recipient "
                    "callbacks, so delivery statuses arrive late or not at all.",
                    hint="Use 'per_recipient' (every status) or 'per_recipient_final'.",
                    id="feedback_app.W133",
                )
            )
        return messages

    @cached_property
    def client(self) -> SinchClient:
        """The Sinch client, built on first use (once per process: the registry caches us)."""
        plan = _credentials(self.config, SERVICE_PLAN_CREDENTIALS)
        project = _credentials(self.config, PROJECT_CREDENTIALS)
        if all(plan.values()):
            credentials = {
                "service_plan_id": plan["SERVICE_PLAN_ID"],
                "sms_api_token": plan["API_TOKEN"],
            }
        elif all(project.values()):
            credentials = {
                "project_id": project["PROJECT_ID"],
                "key_id": project["KEY_ID"],
                "key_secret": project["KEY_SECRET"],
            }
        else:
            # The SDK would raise a ValueError on the first call; say which settings instead.
            raise PermanentError(
                f"{self.key}: set SERVICE_PLAN_ID and API_TOKEN, or PROJECT_ID, KEY_ID and "
                "KEY_SECRET",
                code="missing_credentials",
            )
        client = SinchClient(
            sms_region=setting(self.config, "REGION", "SINCH_SMS_REGION") or DEFAULT_REGION,
            # The outbox retries with its own backoff; the SDK would sleep on 429 in our worker.
            retry_configuration=RetryConfiguration(retry_policy=RetryPolicy.NONE),
            logger=_sdk_logger(),
            **credentials,
        )
        configuration = client.configuration
        configuration.connection_timeout = float(self.config.get("TIMEOUT", DEFAULT_TIMEOUT))
        base_url = self.config.get("BASE_URL")
        if base_url:
            # Both SMS origins are format strings with the region as "{}"; a URL without one
            # is used as it is, path included (``{origin}/xms/v1/...``).
            base_url = base_url.rstrip("/")
            configuration.sms_domain = base_url
            configuration.sms_domain_with_service_plan_id = base_url
        auth_url = self.config.get("AUTH_URL") or base_url
        if auth_url:
            configuration.auth_origin = auth_url.rstrip("/")
        return client

    def callback_url(self) -> str | None:
        """``CALLBACK_URL``, else this key's webhook under ``PUBLIC_URL``, else None (Sinch then
        uses the service plan's default callback URL)."""
        if self.config.get("CALLBACK_URL"):
            return self.config["CALLBACK_URL"]
        return webhook_url("sinch", self.key)

    def send(
        self,
        *,
        to: str,
        body: str,
        sender: str | None,
        channel: str,
        message_id: str,
        **options: Any,
    ) -> SendResult:
        """Send a batch of one to ``to`` with delivery feedback enabled.

        ``sender`` (a number, short code or alphanumeric id) overrides ``FROM``; with neither,
        ``from`` is left out and Sinch uses the service plan's default originator, if any.
        ``options`` go to ``send_sms`` (``expire_at``, ``flash_message``..., see ``OPTIONS``).
        """
        if channel != Channel.SMS:
            raise PermanentError(
                f"Sinch SMS sends sms, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Sinch options: {', '.join(sorted(unknown))}")
        params: dict[str, Any] = {
            "delivery_report": self.config.get("DELIVERY_REPORT", DEFAULT_DELIVERY_REPORT),
            "event_destination_target": self.callback_url(),
            **options,
        }
        params = {name: value for name, value in params.items() if value is not None}
        origin = sender or self.config.get("FROM")
        try:
            batch = self.client.sms.batches.send_sms(
                to=[to],
                from_=origin,
                body=body,
                feedback_enabled=True,
                # Echoed in every delivery report: finds our message even before the send's
                # answer (and its batch id) is committed.
                client_reference=message_id,
                **params,
            )
        except (SinchException, requests.RequestException, ValidationError, ValueError) as exc:
            raise error_from_exception(exc) from exc
        if not batch.id:
            raise PermanentError("Sinch answered the send without a batch id", code="no_id")
        return SendResult(
            provider_message_id=batch.id,
            delivery_status=Delivery.QUEUED,
            sender=batch.from_ or origin or "",
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Post delivery feedback for the whole batch (``recipients: []``).

        Sinch takes feedback for a batch more than once (for different recipients; a repeat for
        the same ones, after a lost answer, is not documented as an error) and takes no
        idempotency key.
        """
        if outcome not in self.reports:
            raise PermanentError(
                f"Sinch takes only confirmed (delivered) feedback, not {outcome!r}",
                code="unsupported_outcome",
            )
        try:
            self.client.sms.batches.send_delivery_feedback(
                batch_id=provider_message_id, recipients=[]
            )
        except (SinchException, requests.RequestException, ValidationError, ValueError) as exc:
            raise error_from_exception(exc) from exc

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """The batch's status from its summary delivery report (counts per status, no numbers);
        None while the report lists no status."""
        batch_id = message.provider_message_id
        try:
            report = self.client.sms.delivery_reports.get(batch_id=batch_id, report_type="summary")
        except (SinchException, requests.RequestException, ValidationError, ValueError) as exc:
            raise error_from_exception(exc) from exc
        return status_from_summary(batch_id, report.statuses)


def _sdk_logger() -> logging.Logger:
    logger = logging.getLogger(SDK_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
    return logger


def status_from_summary(batch_id: str, statuses: list[Any]) -> StatusUpdate | None:
    """The update a batch delivery report's ``statuses`` give for a batch of one recipient: the
    entry with a count (the highest ranked if a report ever lists more); None without one."""
    best: StatusUpdate | None = None
    for entry in statuses:
        status = delivery_status(str(entry.status))
        if status is None or not entry.count:
            continue
        update = StatusUpdate(
            provider_message_id=batch_id,
            delivery_status=status,
            provider_status=status_name(str(entry.status)) or "",
            detail={"code": str(entry.code)},
        )
        if best is None or DELIVERY_RANK[status] > DELIVERY_RANK[best.delivery_status]:
            best = update
    return best
