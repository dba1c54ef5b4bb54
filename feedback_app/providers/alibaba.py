"""Alibaba Cloud SMS, international (``alibaba``): ``alibabacloud-dysmsapi20180501``.

Sends with ``SendMessageToGlobe`` (the body we compose; ``SendMessageWithTemplate`` is for the
Chinese mainland only), our message id as ``TaskId``, which every status report echoes.
Conversions are reported with ``SmsConversion``: ``Delivered=true`` when the recipient used the
code, ``Delivered=false`` when the message was failed or expired (Alibaba counts "verified"
against "requested" OTP messages). Alibaba advises calling SmsConversion asynchronously; the
outbox does, after the confirmation's commit. Statuses are pushed by Alibaba's SmsReport HTTP
batch push (``webhooks/alibaba.py``) and can be fetched with ``QueryMessage`` (``fetch_status``).

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]``
(docs/providers/alibaba.md): ``ACCESS_KEY_ID`` and ``ACCESS_KEY_SECRET`` (else
``ALIBABA_CLOUD_ACCESS_KEY_ID`` / ``ALIBABA_CLOUD_ACCESS_KEY_SECRET``), ``FROM``, ``REGION``,
``ENDPOINT`` or ``BASE_URL`` (a local fake), ``TIMEOUT``, ``WEBHOOK_TOKEN``.
"""

from __future__ import annotations

import os
from email.utils import parsedate_to_datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.core.checks import CheckMessage, Error, Warning

from ..states import Channel, Delivery
from .base import PermanentError, Provider, ProviderError, RetryableError, SendResult, StatusUpdate

if TYPE_CHECKING:
    from datetime import datetime

    from alibabacloud_dysmsapi20180501.client import Client

    from ..models import Message

#: Alibaba's delivery status of a message (``Status`` in QueryMessage and in the SmsReport push)
#: -> normalized delivery status.
STATUSES: dict[str, str] = {
    #: QueryMessage: still being sent (no receipt from the carrier yet).
    "3": Delivery.SENT,
    #: Sent successfully: the carrier's receipt said delivered (``ErrorCode`` ``DELIVERED`` /
    #: ``success``).
    "1": Delivery.DELIVERED,
    #: Failed: the carrier's receipt said not delivered (``ErrorCode`` says why).
    "2": Delivery.UNDELIVERED,
    #: Invalid (SmsReport push only): the message expired or was void before delivery.
    "6": Delivery.UNDELIVERED,
}

#: Our outcome -> SmsConversion ``Delivered``.
DELIVERED: dict[str, bool] = {"confirmed": True, "failed": False}

#: The international API's region and its endpoint (the SDK's endpoint map has the others).
DEFAULT_REGION = "ap-southeast-1"

#: Seconds the SDK waits to connect and for each read (its own defaults: 5 s and 10 s).
DEFAULT_TIMEOUT = 10.0

#: SendMessageToGlobe parameters a caller may pass through ``send(**options)``.
OPTIONS: frozenset[str] = frozenset({"validity_period", "type", "channel_id"})

#: Gateway error codes worth retrying (throttling, the service's own failures); others, and any
#: 4xx not listed, are permanent (signature, access key, missing or invalid parameters).
RETRYABLE_CODES: frozenset[str] = frozenset(
    {
        "Throttling",
        "Throttling.User",
        "Throttling.Api",
        "Throttling.Concurrent",
        "ServiceUnavailable",
        "InternalError",
        "UnknownError",
    }
)

#: ``ResponseCode`` values (HTTP 200) worth retrying: Alibaba's own failures and the per-minute
#: frequency limit; the rest (number, sender, balance, account, day limits) need a person.
RETRYABLE_RESPONSE_CODES: frozenset[str] = frozenset(
    {
        "SYSTEM_ERROR",
        "isp.SYSTEM_ERROR",
        "isp.GATEWAY_ERROR",
        "isp.UNKNOWN",
        "BUSINESS_LIMIT_CONTROL",
        "BUSINESS_LIMIT_CONTROL_MINUTE",
    }
)

_CHANNELS = frozenset({Channel.SMS})


def delivery_status(provider_status: str) -> str | None:
    """The normalized status of an Alibaba ``Status``; None for one that is not applied."""
    return STATUSES.get(provider_status)


def parse_date(value: str | None) -> datetime | None:
    """An Alibaba date (``Thu, 25 Nov 2021 10:27:33 +0800``) as an aware datetime, else None."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo is not None else None


def error_from_exception(exc: Exception) -> ProviderError:
    """The provider error for what an SDK call raised, keeping Alibaba's code and message.

    Gateway errors (``AlibabaCloudException``: ``ClientException``, ``ServerException``,
    ``ThrottlingException``) carry Alibaba's ``Code``; throttling, 5xx and the codes in
    ``RETRYABLE_CODES`` are retryable. Transport failures (timeouts, refused connections) come
    as ``UnretryableException`` (the SDK's own retries are off) and are retryable.
    """
    from alibabacloud_tea_openapi.exceptions import AlibabaCloudException, ThrottlingException
    from Tea.exceptions import UnretryableException

    if isinstance(exc, ProviderError):  # ours, e.g. missing credentials when building the client
        return exc
    if isinstance(exc, AlibabaCloudException):
        data = exc.data if isinstance(exc.data, dict) else {}
        code = str(exc.code or data.get("Code") or "")
        message = str(data.get("Message") or exc.message or "")
        status = exc.status_code if isinstance(exc.status_code, int) else 0
        if (
            isinstance(exc, ThrottlingException)
            or code in RETRYABLE_CODES
            or code.startswith("Throttling")
            or status >= 500
        ):
            return RetryableError(message, code=code)
        return PermanentError(message, code=code)
    if isinstance(exc, UnretryableException):
        inner = getattr(exc, "inner_exception", None)
        return RetryableError(str(inner or exc), code=type(inner or exc).__name__)
    return PermanentError(str(exc), code=type(exc).__name__)


def _response_error(body: Any) -> ProviderError | None:
    """The error an HTTP 200 answer carries in ``ResponseCode``; None when it is ``OK``."""
    code = getattr(body, "response_code", None) or ""
    if code == "OK":
        return None
    message = getattr(body, "response_description", None) or "no ResponseCode in the answer"
    side = RetryableError if code in RETRYABLE_RESPONSE_CODES or not code else PermanentError
    return side(message, code=code or "no_response_code")


class AlibabaProvider(Provider):
    """``SendMessageToGlobe``; ``SmsConversion`` Delivered=true/false; ``QueryMessage``."""

    reports = frozenset(DELIVERED)
    channels = _CHANNELS
    #: Alibaba pushes final reports only, and a push lost after its three tries is gone: a
    #: message still queued or sent after SYNC_STALE_AFTER is asked about with QueryMessage.
    sync_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        for name, variable, check_id in (
            ("ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID", "feedback_app.W160"),
            ("ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "feedback_app.W161"),
        ):
            if not (config.get(name) or os.environ.get(variable)):
                messages.append(
                    Warning(
                        f"Provider {key!r} has no {name}: every call to Alibaba Cloud will fail.",
                        hint=f"Set {name} (or the {variable} environment variable) to a RAM "
                        "user's AccessKey allowed dysms:SendMessageToGlobe, dysms:SmsConversion "
                        "and dysms:QueryMessage.",
                        id=check_id,
                    )
                )
        if not config.get("WEBHOOK_TOKEN"):
            messages.append(
                Warning(
                    f"Provider {key!r} has no WEBHOOK_TOKEN: every SmsReport push is refused.",
                    hint="Alibaba does not sign its status reports. Set WEBHOOK_TOKEN to a long "
                    "random string and configure the receiving URL in the SMS console as the "
                    "webhook URL with ?token=<WEBHOOK_TOKEN> (docs/providers/alibaba.md).",
                    id="feedback_app.W162",
                )
            )
        for name in ("BASE_URL", "ENDPOINT"):
            value = config.get(name)
            if value and not _endpoint(value)[1]:
                messages.append(
                    Error(
                        f"Provider {key!r} has an unusable {name}: {value!r}.",
                        hint="Use an http(s):// URL for BASE_URL, a host name for ENDPOINT.",
                        id="feedback_app.E160",
                    )
                )
        return messages

    @cached_property
    def client(self) -> Client:
        """The SDK client, built on first use (once per process: the registry caches us)."""
        from alibabacloud_dysmsapi20180501.client import Client
        from alibabacloud_tea_openapi.models import Config

        access_key_id = self._setting("ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID")
        access_key_secret = self._setting("ACCESS_KEY_SECRET", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        if not (access_key_id and access_key_secret):
            # Without them the SDK falls back to its credential chain (profile files, the ECS
            # metadata service): never what a host configured here means.
            raise PermanentError(
                f"{self.key}: set ACCESS_KEY_ID and ACCESS_KEY_SECRET", code="missing_credentials"
            )
        timeout_ms = int(float(self.config.get("TIMEOUT", DEFAULT_TIMEOUT)) * 1000)
        protocol, endpoint = _endpoint(self.config.get("BASE_URL") or self.config.get("ENDPOINT"))
        config = Config(
            access_key_id=access_key_id,
            access_key_secret=access_key_secret,
            region_id=self.config.get("REGION", DEFAULT_REGION),
            read_timeout=timeout_ms,
            connect_timeout=timeout_ms,
        )
        if endpoint:
            # The SDK puts host[:port][/path] in the URL and the Host header as given and signs
            # the path "/": a fake served under /alibaba strips that prefix before checking.
            config.endpoint = endpoint
            config.protocol = protocol
        return Client(config)

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
        """SendMessageToGlobe to ``to`` (E.164; sent as digits with the dialing code).

        ``sender`` is a sender ID or number (``From``); without it ``FROM`` applies, and without
        that Alibaba picks one. ``options``: ``validity_period`` (seconds), ``type``,
        ``channel_id``, as the SDK's request names them. No opt-in is needed for SmsConversion.
        """
        from alibabacloud_dysmsapi20180501.models import SendMessageToGlobeRequest

        if channel not in _CHANNELS:
            raise PermanentError(
                f"Alibaba Cloud SMS sends sms, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Alibaba options: {', '.join(sorted(unknown))}")
        from_ = sender or self.config.get("FROM") or None
        request = SendMessageToGlobeRequest(
            to=to.removeprefix("+"), message=body, from_=from_, task_id=message_id, **options
        )
        try:
            response = self.client.send_message_to_globe(request)
        except Exception as exc:  # the SDK raises Tea/Dara exceptions and wraps transport ones
            raise _masked(error_from_exception(exc), request.to) from exc
        answer = response.body
        error = _response_error(answer)
        if error is not None:
            raise _masked(error, request.to)
        if not answer.message_id:
            raise RetryableError("SendMessageToGlobe answered OK without a MessageId", code="OK")
        return SendResult(
            provider_message_id=answer.message_id,
            delivery_status=Delivery.QUEUED,
            provider_status="",
            sender=answer.from_ or from_ or "",
            metadata={"segments": answer.segments} if answer.segments else {},
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """SmsConversion ``Delivered=true`` (confirmed) or ``false`` (failed).

        ``ConversionTime`` is left out: Alibaba then takes the time of the call, which for the
        outbox is moments after the confirmation; a time from our clock could break the rule
        that it be before Alibaba's "now". Alibaba takes no idempotency key: a repeated call
        (after a timeout whose request did arrive) reports the same outcome again.
        """
        from alibabacloud_dysmsapi20180501.models import SmsConversionRequest

        if outcome not in DELIVERED:
            raise PermanentError(
                f"Alibaba SmsConversion takes confirmed or failed, not {outcome!r}",
                code="unsupported_outcome",
            )
        if not provider_message_id:
            raise PermanentError("no Alibaba MessageId to report", code="invalid_message_id")
        request = SmsConversionRequest(message_id=provider_message_id, delivered=DELIVERED[outcome])
        try:
            response = self.client.sms_conversion(request)
        except Exception as exc:
            raise error_from_exception(exc) from exc
        error = _response_error(response.body)
        if error is not None:
            raise error

    def superseded_outcome(self, message: Message) -> str | None:
        # Delivered=false is "the recipient did not use this OTP": true of a message whose
        # verification converted through a resend. Alibaba has no "converted with another".
        return "failed"

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """QueryMessage: the message's status as Alibaba has it now."""
        from alibabacloud_dysmsapi20180501.models import QueryMessageRequest

        try:
            response = self.client.query_message(
                QueryMessageRequest(message_id=message.provider_message_id)
            )
        except Exception as exc:
            raise error_from_exception(exc) from exc
        answer = response.body
        error = _response_error(answer)
        if error is not None:
            raise error
        raw = str(answer.status or "")
        status = delivery_status(raw)
        if status is None:
            return None
        detail = {"error_code": answer.error_code} if answer.error_code else {}
        return StatusUpdate(
            provider_message_id=answer.message_id or message.provider_message_id,
            delivery_status=status,
            provider_status=raw,
            at=parse_date(answer.receive_date),
            detail=detail,
        )

    def _setting(self, name: str, environment_variable: str) -> str | None:
        return self.config.get(name) or os.environ.get(environment_variable) or None


def _masked(error: ProviderError, digits: str) -> ProviderError:
    """``error`` with the recipient masked where Alibaba quotes it as it takes it, without the
    "+" (``ProviderError`` masks E.164 numbers only)."""
    if not digits or digits not in error.message:
        return error
    return type(error)(error.message.replace(digits, "+" + digits), code=error.code)


def _endpoint(value: str | None) -> tuple[str, str]:
    """``(protocol, endpoint)`` for the SDK's Config from ``BASE_URL`` (``http://host:port/path``)
    or ``ENDPOINT`` (a bare host, HTTPS); ``("", "")`` for none or an unusable one."""
    if not value:
        return "", ""
    if "://" not in value:
        return "https", value.strip("/")
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        return "", ""
    return parts.scheme, parts.netloc + parts.path.rstrip("/")
