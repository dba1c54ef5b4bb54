"""Infobip SMS backend (``infobip``): infobip-api-python-client, with conversion tracking.

Messages go out through ``SmsApi.send_sms_messages`` (``POST /sms/3/messages``) with
``options.conversionTracking`` on and our public id as the message's ``messageId``; a conversion
is reported with ``POST /ct/1/log/end/{messageId}`` ("Confirm conversion"), which the SDK has no
method for: it is made through the SDK's own ``ApiClient`` (``param_serialize`` / ``call_api`` /
``response_deserialize``), so host, API key and errors are the SDK's. Infobip has no
"not converted" call: a message whose conversion is not logged counts as not converted.
Delivery reports arrive on ``webhooks/infobip.py``; ``fetch_status`` reads the message logs.

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]``
(docs/providers/infobip.md): ``API_KEY`` and ``BASE_URL`` (else ``IB_API_KEY`` and
``IB_BASE_URL``), ``FROM``, ``DELIVERY_URL``, ``WEBHOOK_BASIC_AUTH``,
``CONVERSION_TRACKING_NAME``, ``TIMEOUT``.
"""

from __future__ import annotations

import json
import os
from functools import cached_property
from typing import TYPE_CHECKING, Any

import urllib3
from django.core.checks import CheckMessage, Error, Warning
from infobip_api_client import (
    ApiClient,
    Configuration,
    SmsApi,
    SmsDestination,
    SmsMessage,
    SmsMessageContent,
    SmsMessageDeliveryReporting,
    SmsMessageOptions,
    SmsMessageRequestOptions,
    SmsRequest,
    SmsTextContent,
    SmsTracking,
    SmsWebhooks,
    ValidityPeriod,
)
from infobip_api_client.exceptions import ApiException, OpenApiException

from ..conf import app_settings
from ..states import Channel, Delivery
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
    from infobip_api_client.models import SmsMessageError, SmsMessageStatus

    from ..models import Message

#: Infobip status ``name`` -> normalized delivery status, for the names whose meaning is finer
#: than their group's (docs: "Response status and error codes"). Other names take their group's.
STATUSES: dict[str, str] = {
    #: Accepted by Infobip, not yet passed to the operator.
    "PENDING_ACCEPTED": Delivery.QUEUED,
    #: Forwarded to the operator; no receipt yet.
    "PENDING_ENROUTE": Delivery.SENT,
    "PENDING_WAITING_DELIVERY": Delivery.SENT,
    #: The operator took it; the handset's receipt never came (group DELIVERED all the same).
    "DELIVERED_TO_OPERATOR": Delivery.SENT,
    "DELIVERED_TO_HANDSET": Delivery.DELIVERED,
    "UNDELIVERABLE_REJECTED_OPERATOR": Delivery.UNDELIVERED,
    "UNDELIVERABLE_NOT_DELIVERED": Delivery.UNDELIVERED,
    #: Not delivered within its validity period.
    "EXPIRED_EXPIRED": Delivery.UNDELIVERED,
    #: The operator's receipt never said: Infobip will not tell more.
    "EXPIRED_DLR_UNKNOWN": Delivery.UNKNOWN,
}

#: Infobip status ``groupName`` -> normalized delivery status, for names not in ``STATUSES``
#: (the REJECTED group has many: REJECTED_NETWORK, REJECTED_NOT_ENOUGH_CREDITS...).
GROUPS: dict[str, str] = {
    "ACCEPTED": Delivery.QUEUED,
    "PENDING": Delivery.QUEUED,
    "DELIVERED": Delivery.DELIVERED,
    "UNDELIVERABLE": Delivery.UNDELIVERED,
    "EXPIRED": Delivery.UNDELIVERED,
    "REJECTED": Delivery.REJECTED,
}

#: ``conversionTrackingName`` sent by default: the type Infobip's docs use for OTP traffic.
DEFAULT_TRACKING_NAME = "ONE_TIME_PIN"

#: "Confirm conversion" (operationId ``log-end-tag``): no body, answers ``{"processKey": ...}``.
CONVERSION_PATH = "/ct/1/log/end/{messageId}"

#: Seconds each HTTP call may take (connect and read): the SDK sets none, and a hung request
#: would hold an outbox call past CLAIM_TIMEOUT.
DEFAULT_TIMEOUT = 10.0

#: Keyword arguments ``send`` takes besides the message: a validity period in minutes, the
#: campaign reference id, and callback data echoed in the message's delivery reports.
OPTIONS: frozenset[str] = frozenset({"validity_period", "campaign_reference_id", "callback_data"})


def delivery_status(name: str | None, group: str | None) -> str | None:
    """The normalized status of an Infobip status ``name`` in ``group``; None: not applied."""
    return STATUSES.get(name or "") or GROUPS.get(group or "")


def status_of(status: SmsMessageStatus | None) -> tuple[str, str] | None:
    """(delivery status, raw status) of an SDK status object; None for one not applied.

    The raw status is the status ``name`` (``DELIVERED_TO_HANDSET``), else its group.
    """
    if status is None:
        return None
    group = status.group_name.value if status.group_name is not None else None
    normalized = delivery_status(status.name, group)
    if normalized is None:
        return None
    return normalized, status.name or group or ""


def error_detail(error: SmsMessageError | None) -> dict[str, Any]:
    """What a report's ``error`` says, for the delivery event's detail (nothing when NO_ERROR)."""
    if error is None or (error.id in (None, 0) and error.name in (None, "NO_ERROR")):
        return {}
    detail: dict[str, Any] = {"error_code": str(error.id) if error.id is not None else ""}
    if error.name:
        detail["error_name"] = error.name
    if error.group_name is not None:
        detail["error_group"] = error.group_name.value
    if error.permanent is not None:
        detail["error_permanent"] = error.permanent
    return detail


def _error_body(exc: ApiException) -> tuple[str, str]:
    """(code, text) of an Infobip error body: the v3 shape ``{"errorCode", "description",
    "violations"}`` or the older ``{"requestError": {"serviceException": {"messageId",
    "text"}}}`` (the conversion endpoint's); ("", "") when the body is neither."""
    try:
        body = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    if isinstance(body.get("errorCode"), str):
        text = str(body.get("description") or "")
        violations = [
            f"{item.get('property')}: {item.get('violation')}"
            for item in body.get("violations") or []
            if isinstance(item, dict)
        ]
        if violations:
            text = f"{text} ({'; '.join(violations)})" if text else "; ".join(violations)
        return body["errorCode"], text
    request_error = body.get("requestError")
    service = request_error.get("serviceException") if isinstance(request_error, dict) else None
    if isinstance(service, dict):
        return str(service.get("messageId") or ""), str(service.get("text") or "")
    return "", ""


def error_from_exception(exc: Exception) -> ProviderError:
    """The provider error for what an SDK call raised, with Infobip's own code.

    HTTP 429, 5xx, an answer without an HTTP status, timeouts and connection errors are
    retryable; other 4xx (400, 401, 403, 404...) and client-side errors are permanent.
    """
    if isinstance(exc, ApiException):
        status = exc.status if isinstance(exc.status, int) else 0
        code, text = _error_body(exc)
        code = code or (str(status) if status else "no_status")
        text = text or str(exc.reason or "")
        if status == 0 or status == 429 or status >= 500:
            # status 0: the SDK's own (unsupported content type, TLS): nothing says it is final.
            return RetryableError(text, code=code)
        return PermanentError(text, code=code)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        # Timeouts, refused connections, a connection dropped mid-answer.
        return RetryableError(str(exc), code=type(exc).__name__)
    # Client-side: the SDK's model validation (pydantic), ApiValueError...
    return PermanentError(str(exc), code=type(exc).__name__)


#: What an SDK call raises: Infobip's error answers (``ApiException`` and its subclasses), the
#: SDK's own errors, urllib3's transport errors, and the models' validation errors.
CLIENT_ERRORS = (OpenApiException, urllib3.exceptions.HTTPError, OSError, ValueError)


class InfobipProvider(Provider):
    """``send_sms_messages`` with conversion tracking; reports ``confirmed`` only."""

    reports = frozenset({"confirmed"})
    channels = frozenset({Channel.SMS})
    #: A report lost (or sent before the send committed) leaves a message queued or sent; the
    #: message logs (48 hours) may know more.
    sync_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if not (config.get("API_KEY") or os.environ.get("IB_API_KEY")):
            messages.append(
                Warning(
                    f"Provider {key!r} has no API_KEY: every send to Infobip will fail.",
                    hint="Set API_KEY (or IB_API_KEY) to an API key with the sms:message:send "
                    "scope.",
                    id="feedback_app.W140",
                )
            )
        if not (config.get("BASE_URL") or os.environ.get("IB_BASE_URL")):
            messages.append(
                Warning(
                    f"Provider {key!r} has no BASE_URL: Infobip serves each account at its own "
                    "base URL.",
                    hint="Set BASE_URL (or IB_BASE_URL) to the base URL shown in the Infobip web "
                    "interface, e.g. https://xxxxx.api.infobip.com.",
                    id="feedback_app.W141",
                )
            )
        auth = config.get("WEBHOOK_BASIC_AUTH")
        if not auth:
            messages.append(
                Warning(
                    f"Provider {key!r} has no WEBHOOK_BASIC_AUTH: its webhook refuses every "
                    "delivery report.",
                    hint="Set WEBHOOK_BASIC_AUTH to 'user:password' and give Infobip the same "
                    "credentials (security settings of type BASIC on the notification profile).",
                    id="feedback_app.W142",
                )
            )
        elif not isinstance(auth, str) or ":" not in auth:
            messages.append(
                Error(
                    f"Provider {key!r}: WEBHOOK_BASIC_AUTH must be 'user:password'.",
                    id="feedback_app.E140",
                )
            )
        if config.get("DELIVERY_URL") is None and not app_settings.PUBLIC_URL:
            messages.append(
                Warning(
                    f"Provider {key!r} names no delivery report URL in its messages: reports "
                    "reach the app only through an Infobip subscription pointing at its webhook.",
                    hint="Set FEEDBACK_APP['PUBLIC_URL'] or the provider's DELIVERY_URL, or set "
                    "DELIVERY_URL to False once a subscription is in place.",
                    id="feedback_app.W143",
                )
            )
        timeout = config.get("TIMEOUT", DEFAULT_TIMEOUT)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
            messages.append(
                Error(
                    f"Provider {key!r}: TIMEOUT must be a positive number of seconds.",
                    id="feedback_app.E141",
                )
            )
        return messages

    # -- the SDK client ----------------------------------------------------------------------

    @cached_property
    def api_client(self) -> ApiClient:
        """The SDK's ``ApiClient``, built on first use (once per process: the registry caches us).

        ``BASE_URL`` may have a path (``http://127.0.0.1:8001/infobip``): the SDK appends each
        resource path to it. The SDK refuses ``http://`` except for localhost and 127.0.0.1.
        """
        api_key = self._setting("API_KEY", "IB_API_KEY")
        base_url = self._setting("BASE_URL", "IB_BASE_URL")
        if not (api_key and base_url):
            raise PermanentError(
                f"{self.key}: set API_KEY and BASE_URL (or IB_API_KEY and IB_BASE_URL)",
                code="missing_credentials",
            )
        try:
            # The string form of api_key (SDK 6) sends "Authorization: App <key>"; retries=0:
            # one request per attempt, the outbox retries with backoff.
            configuration = Configuration(host=base_url.rstrip("/"), api_key=api_key, retries=0)
        except ValueError as exc:  # an http:// base URL that is not local
            raise PermanentError(str(exc), code="invalid_base_url") from exc
        return ApiClient(configuration)

    @cached_property
    def sms(self) -> SmsApi:
        return SmsApi(self.api_client)

    @property
    def timeout(self) -> float:
        return float(self.config.get("TIMEOUT", DEFAULT_TIMEOUT))

    @property
    def webhook_basic_auth(self) -> str | None:
        """The 'user:password' Infobip must send with every delivery report."""
        return self.config.get("WEBHOOK_BASIC_AUTH") or None

    def delivery_url(self) -> str | None:
        """``DELIVERY_URL``; else this key's webhook under ``PUBLIC_URL``; else None.

        ``DELIVERY_URL=False`` sends none: the account's subscription says where reports go.
        """
        setting = self.config.get("DELIVERY_URL")
        if setting is not None:
            return setting or None
        return webhook_url("infobip", self.key)

    # -- the provider interface --------------------------------------------------------------

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
        """Send ``body`` to ``to`` with conversion tracking; our id is Infobip's ``messageId``.

        ``sender`` (else ``FROM``) is the sender id; without one Infobip uses the account's
        default. ``options``: ``validity_period`` (minutes), ``campaign_reference_id``,
        ``callback_data`` (see ``OPTIONS``).
        """
        if channel != Channel.SMS:
            raise PermanentError(
                f"Infobip SMS sends sms, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Infobip options: {', '.join(sorted(unknown))}")
        origination = sender or self.config.get("FROM") or None
        url = self.delivery_url()
        message_options = None
        if options.get("validity_period") or options.get("campaign_reference_id"):
            message_options = SmsMessageOptions(
                validity_period=(
                    ValidityPeriod(amount=options["validity_period"])
                    if options.get("validity_period")
                    else None
                ),
                campaign_reference_id=options.get("campaign_reference_id"),
            )
        webhooks = None
        if url or options.get("callback_data"):
            webhooks = SmsWebhooks(
                delivery=SmsMessageDeliveryReporting(url=url) if url else None,
                content_type="application/json",
                callback_data=options.get("callback_data"),
            )
        try:
            request = SmsRequest(
                messages=[
                    SmsMessage(
                        sender=origination,
                        # Infobip takes numbers in international format without the "+".
                        destinations=[SmsDestination(to=to.lstrip("+"), message_id=message_id)],
                        content=SmsMessageContent(SmsTextContent(text=body)),
                        options=message_options,
                        webhooks=webhooks,
                    )
                ],
                options=SmsMessageRequestOptions(
                    conversion_tracking=SmsTracking(
                        use_conversion_tracking=True,
                        conversion_tracking_name=self.config.get(
                            "CONVERSION_TRACKING_NAME", DEFAULT_TRACKING_NAME
                        ),
                    )
                ),
            )
            response = self.sms.send_sms_messages(request, _request_timeout=self.timeout)
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        # One destination, one entry; found by our messageId should Infobip add others.
        sent = next(
            (m for m in response.messages if m.message_id == message_id),
            response.messages[0] if response.messages else None,
        )
        if sent is None:
            raise RetryableError("Infobip answered the send with no message", code="empty_answer")
        status = status_of(sent.status) or (Delivery.QUEUED, "")
        result_metadata: dict[str, Any] = {}
        if response.bulk_id:
            result_metadata["bulk_id"] = response.bulk_id
        if sent.details is not None and sent.details.message_count is not None:
            result_metadata["message_count"] = sent.details.message_count
        return SendResult(
            provider_message_id=sent.message_id or message_id,
            delivery_status=status[0],
            provider_status=status[1],
            sender=origination or "",
            metadata=result_metadata,
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Confirm the conversion: ``POST /ct/1/log/end/{messageId}``.

        The SDK has no method for it; the call goes through its ``ApiClient``, as its generated
        methods do. It takes no idempotency key: logging the end tag again after a lost answer
        confirms the same conversion.
        """
        if outcome not in self.reports:
            raise PermanentError(
                f"Infobip takes only confirmed conversions, not {outcome!r}",
                code="unsupported_outcome",
            )
        client = self.api_client
        try:
            request = client.param_serialize(
                method="POST",
                resource_path=CONVERSION_PATH,
                path_params={"messageId": provider_message_id},
                header_params={"Accept": client.select_header_accept(["application/json"])},
                auth_settings=["APIKeyHeader"],
            )
            response = client.call_api(*request, _request_timeout=self.timeout)
            response.read()
            client.response_deserialize(
                response_data=response, response_types_map={"200": "object"}
            )
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """The message's status from its log (``GET /sms/3/logs``, kept 48 hours); None when
        Infobip has no log of it or its status is not applied."""
        try:
            logs = self.sms.get_outbound_sms_message_logs(
                message_id=[message.provider_message_id], _request_timeout=self.timeout
            )
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        for log in logs.results or []:
            if log.message_id != message.provider_message_id:
                continue
            status = status_of(log.status)
            if status is None:
                return None
            return StatusUpdate(
                provider_message_id=message.provider_message_id,
                delivery_status=status[0],
                provider_status=status[1],
                at=log.done_at,
                detail=error_detail(log.error),
            )
        return None

    def _setting(self, name: str, environment_variable: str) -> str | None:
        return self.config.get(name) or os.environ.get(environment_variable) or None
