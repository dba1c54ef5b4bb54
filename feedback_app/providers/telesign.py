"""Telesign SMS Verify backend (``telesign``): ``telesignenterprise`` ``VerifyClient``.

A message is sent as an SMS Verify transaction (``POST /v1/verify/sms``) whose ``template`` is our
own body, so the code the app generated is the one the user reads; a conversion is reported with
the Completion API (``PUT /v1/verify/completion/{reference_id}``), which Telesign takes for SMS
Verify transactions whose code the customer generated. The Messaging API (``/v1/messaging``) is
not used: its reference ids are no Verify transactions, so they could not be completed. Telesign
has no report for a message that was not used, so only ``confirmed`` is sent.

Statuses arrive on the Transaction Callback Service (``webhooks/telesign.py``), at the
``callback_url`` each send names, and can be fetched with ``GET /v1/verify/{reference_id}``.

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]``
(docs/providers/telesign.md): ``CUSTOMER_ID`` and ``API_KEY`` (else ``TELESIGN_CUSTOMER_ID``,
``TELESIGN_API_KEY``); ``SENDER_ID``; ``CALLBACK_URL``; ``TIMEOUT``; ``BASE_URL`` (a local fake).
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from django.core.checks import CheckMessage, Error, Warning

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
    from telesign.rest import RestClient
    from telesignenterprise.verify import VerifyClient

    from ..models import Message

#: Telesign's REST host for full-service (enterprise) accounts, the SDK's own default.
DEFAULT_BASE_URL = "https://rest-ww.telesign.com"

#: Seconds the SDK waits for the connection and each read (its own default is 10 too; set
#: explicitly so a hung request cannot hold an outbox call past CLAIM_TIMEOUT).
DEFAULT_TIMEOUT = 10.0

#: Telesign's ``status.code`` of an SMS Verify transaction -> normalized delivery status; used by
#: ``send``, ``fetch_status`` and the callback webhook. Codes are strings, as ``provider_status``
#: stores them. Codes not listed (``295`` status delayed, ``599`` status not available) say
#: nothing about the message and are not applied.
STATUSES: dict[str, str] = {
    #: Message in progress: the answer to the send.
    "290": Delivery.QUEUED,
    #: Queued by gateway.
    "292": Delivery.QUEUED,
    #: Delivered to gateway (intermediate): handed to the carrier.
    "203": Delivery.SENT,
    #: Delivered to handset (final).
    "200": Delivery.DELIVERED,
    #: Transaction successfully completed, suspicious activity detected.
    "201": Delivery.DELIVERED,
    #: Final status unknown; sent, but no receipt within 12 hours.
    "250": Delivery.UNKNOWN,
    "251": Delivery.UNKNOWN,
    #: The carrier or the handset could not take it.
    "207": Delivery.UNDELIVERED,  # error delivering SMS to handset (reason unknown)
    "210": Delivery.UNDELIVERED,  # temporary phone error (off, memory full)
    "211": Delivery.UNDELIVERED,  # permanent phone error
    "220": Delivery.UNDELIVERED,  # gateway/network cannot route message
    "221": Delivery.UNDELIVERED,  # message expired before delivery
    "222": Delivery.UNDELIVERED,  # SMS not supported
    "511": Delivery.UNDELIVERED,  # subscriber low on credit
    "512": Delivery.UNDELIVERED,  # roaming error
    "513": Delivery.UNDELIVERED,  # mobile number portability error
    "514": Delivery.UNDELIVERED,  # subscriber absent
    #: Refused before it was sent: blocked by Telesign, the customer, risk or the recipient.
    "229": Delivery.REJECTED,  # blocked by customer request
    "230": Delivery.REJECTED,  # blocked by Telesign (global blocklist)
    "233": Delivery.REJECTED,  # blocked due to high risk score
    "237": Delivery.REJECTED,  # blocked in requested country
    "510": Delivery.REJECTED,  # blocked by subscriber action or request
    "515": Delivery.REJECTED,  # suspected spam
    "518": Delivery.REJECTED,  # blocked due to high risk SIM swap indicator
    "519": Delivery.REJECTED,  # requested SIM swap check could not be performed
    "520": Delivery.REJECTED,  # content not allowed by the carrier
    "521": Delivery.REJECTED,  # sender ID not allowed for destination
    #: Telesign, its gateway or the carrier could not send it.
    "231": Delivery.FAILED,  # invalid/unsupported content
    "500": Delivery.FAILED,  # transaction not attempted
    "501": Delivery.FAILED,  # not authorized
    "502": Delivery.FAILED,  # campaign error (short code)
    "503": Delivery.FAILED,  # carrier rejected, temporary
    "504": Delivery.FAILED,  # carrier rejected, permanent
    "505": Delivery.FAILED,  # error on gateway, temporary
    "506": Delivery.FAILED,  # error on gateway, permanent
    "507": Delivery.FAILED,  # invalid destination address
    "508": Delivery.FAILED,  # invalid source address
    "509": Delivery.FAILED,  # parameters problem
    "517": Delivery.FAILED,  # DLT details for India not supported
}

#: Telesign error codes (``errors[].code``) that waiting may cure, whatever the HTTP status:
#: rate limit exceeded and system unavailable. ``-40008`` (transaction hard cap, HTTP 429) is
#: not among them: a person lifts a cap, not the outbox's retry window.
RETRYABLE_CODES: frozenset[str] = frozenset({"-40007", "-90001"})
#: Refusals that waiting will not change even when answered with a 429 or 5xx.
PERMANENT_CODES: frozenset[str] = frozenset({"-40008"})

#: ``POST /v1/verify/sms`` parameters a caller may pass through ``send(**options)``. Those this
#: backend sets itself (``phone_number``, ``template``) are not among them; ``sender_id`` and
#: ``callback_url`` override the settings for one message.
OPTIONS: frozenset[str] = frozenset(
    {
        "verify_code",
        "ucid",
        "originating_ip",
        "language",
        "sender_id",
        "is_primary",
        "dlt_template_id",
        "dlt_entity_id",
        "transaction_amount",
        "transaction_payee",
        "sim_swap_check",
        "callback_url",
    }
)

#: Transport errors of the SDK's ``requests`` session that a later attempt may not meet.
_TRANSIENT = (
    requests.Timeout,
    requests.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
)


def delivery_status(code: object) -> str | None:
    """The normalized status of a Telesign ``status.code``; None for one that is not applied."""
    return STATUSES.get(str(code)) if code is not None else None


def error_from_response(response: RestClient.Response) -> ProviderError:
    """The provider error for a Telesign answer that is not 2xx, with Telesign's own code.

    The code is the first ``errors[].code`` (``-10001`` invalid parameter, ``-30006`` invalid
    signature, ``-40007`` rate limit...), else ``status.code``, else ``http_<status>`` for a body
    that is not Telesign's JSON (a proxy's page). HTTP 429 and 5xx are retryable, other 4xx
    permanent, but for the codes in ``RETRYABLE_CODES`` / ``PERMANENT_CODES``.
    """
    body = response.json if isinstance(response.json, dict) else {}
    errors = body.get("errors") if isinstance(body.get("errors"), list) else []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    status = body.get("status") if isinstance(body.get("status"), dict) else {}
    if first.get("code") is not None:
        code, message = str(first["code"]), str(first.get("description") or "")
    elif status.get("code") is not None:
        code, message = str(status["code"]), str(status.get("description") or "")
    else:
        code, message = f"http_{response.status_code}", (response.body or "")[:200]
    message = message or f"HTTP {response.status_code}"
    if code in PERMANENT_CODES:
        return PermanentError(message, code=code)
    if code in RETRYABLE_CODES or response.status_code == 429 or response.status_code >= 500:
        return RetryableError(message, code=code)
    return PermanentError(message, code=code)


def error_from_exception(exc: requests.RequestException) -> ProviderError:
    """Timeouts and connection errors are retryable; other client-side errors are permanent."""
    if isinstance(exc, _TRANSIENT):
        return RetryableError(str(exc), code=type(exc).__name__)
    return PermanentError(str(exc), code=type(exc).__name__)


def parse_time(value: object) -> datetime | None:
    """An RFC 3339 ``updated_on`` as an aware datetime; None for anything else."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def status_detail(payload: dict[str, Any]) -> dict[str, Any]:
    """What is worth keeping of a status payload (fetch or callback) beside the event.

    Never ``verify.code_entered`` (an OTP) nor ``score_status`` (location, carrier of the number).
    """
    detail: dict[str, Any] = {}
    status = payload.get("status") if isinstance(payload.get("status"), dict) else {}
    if status.get("description"):
        detail["description"] = str(status["description"])[:200]
    errors = payload.get("errors") if isinstance(payload.get("errors"), list) else []
    codes = [str(e["code"]) for e in errors if isinstance(e, dict) and e.get("code") is not None]
    if codes:
        detail["error_code"] = codes[0]
    info = payload.get("additional_info")
    if isinstance(info, dict):
        for name in ("mcc", "mnc", "price", "currency", "message_parts_count"):
            if info.get(name) not in (None, ""):
                detail[name] = info[name]
    return detail


def status_update(payload: dict[str, Any]) -> StatusUpdate | None:
    """The update a status payload (``GET /v1/verify/{id}`` or a callback) says; None when its
    code is not applied or the payload names no transaction."""
    reference_id = payload.get("reference_id")
    status = payload.get("status") if isinstance(payload.get("status"), dict) else {}
    raw = str(status.get("code", ""))
    normalized = delivery_status(raw)
    if not isinstance(reference_id, str) or not reference_id or normalized is None:
        return None
    return StatusUpdate(
        provider_message_id=reference_id,
        delivery_status=normalized,
        provider_status=raw,
        at=parse_time(status.get("updated_on")),
        detail=status_detail(payload),
    )


class TelesignProvider(Provider):
    """SMS Verify with our own text; ``completion`` for ``confirmed``."""

    reports = frozenset({"confirmed"})
    channels = frozenset({Channel.SMS})
    #: ``203`` (delivered to gateway) is the last status when the carrier sends no receipt, and
    #: ``290`` stays when a callback was lost; a fetch may know more.
    sync_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})

    def superseded_outcome(self, message: Message) -> str | None:
        # Telesign has no "converted with another message" outcome, and a completion would say
        # this transaction completed the verification: a resend's sibling is reported nothing.
        return None

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        for name, env, check_id in (
            ("CUSTOMER_ID", "TELESIGN_CUSTOMER_ID", "feedback_app.E150"),
            ("API_KEY", "TELESIGN_API_KEY", "feedback_app.E151"),
        ):
            if not (config.get(name) or os.environ.get(env)):
                messages.append(
                    Error(
                        f"Provider {key!r} has no {name}: Telesign refuses every request, and "
                        "its callbacks cannot be verified.",
                        hint=f"Set {name} (or {env}); see docs/providers/telesign.md.",
                        id=check_id,
                    )
                )
        if not (config.get("CALLBACK_URL") or app_settings.PUBLIC_URL):
            messages.append(
                Warning(
                    f"Provider {key!r} names no callback_url: delivery reports go to the "
                    "account's default callback URL, if Telesign has one for it.",
                    hint="Set FEEDBACK_APP['PUBLIC_URL'] or the provider's CALLBACK_URL, or ask "
                    "Telesign to set the account's callback URL to this key's webhook.",
                    id="feedback_app.W150",
                )
            )
        return messages

    @cached_property
    def client(self) -> VerifyClient:
        """The ``VerifyClient``, built on first use (once per process: the registry caches us)."""
        from telesignenterprise.verify import VerifyClient

        customer_id = self.customer_id
        api_key = self.api_key
        if not (customer_id and api_key):
            raise PermanentError(
                f"{self.key}: set CUSTOMER_ID and API_KEY", code="missing_credentials"
            )
        # rest_endpoint is joined with each resource ("/v1/verify/sms"), so a base URL with a
        # path (the demo's ".../telesign") works; the SDK signs the resource alone.
        return VerifyClient(
            customer_id,
            api_key,
            rest_endpoint=(self.config.get("BASE_URL") or DEFAULT_BASE_URL).rstrip("/"),
            timeout=self.config.get("TIMEOUT", DEFAULT_TIMEOUT),
        )

    @property
    def customer_id(self) -> str | None:
        return self.config.get("CUSTOMER_ID") or os.environ.get("TELESIGN_CUSTOMER_ID") or None

    @property
    def api_key(self) -> str | None:
        """The account's API key: it signs our requests and Telesign's callbacks."""
        return self.config.get("API_KEY") or os.environ.get("TELESIGN_API_KEY") or None

    def callback_url(self) -> str | None:
        """``CALLBACK_URL``, else this key's webhook under ``PUBLIC_URL``, else None (then
        Telesign uses the account's callback URL, if one is set)."""
        if self.config.get("CALLBACK_URL"):
            return self.config["CALLBACK_URL"]
        return webhook_url("telesign", self.key)

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
        """Send ``body`` as the ``template`` of an SMS Verify transaction to the E.164 ``to``.

        The body goes as written (it carries our code; a ``$$CODE$$`` in it is Telesign's code
        placeholder). ``sender`` is a ``sender_id`` (else the ``SENDER_ID`` setting); ``options``
        are other ``/v1/verify/sms`` parameters (``verify_code``, ``ucid``, ``originating_ip``...,
        see ``OPTIONS``).
        """
        if channel != Channel.SMS:
            raise PermanentError(
                f"Telesign SMS Verify sends SMS, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Telesign options: {', '.join(sorted(unknown))}")
        params: dict[str, Any] = {
            "callback_url": self.callback_url(),
            "sender_id": sender or self.config.get("SENDER_ID"),
            **options,
        }
        params = {name: value for name, value in params.items() if value not in (None, "")}
        # Telesign takes digits with the country code, no "+" or separators.
        phone_number = "".join(ch for ch in to if ch.isdigit())
        response = self._call(self.client.sms, phone_number, template=body, **params)
        payload = response.json if isinstance(response.json, dict) else {}
        reference_id = payload.get("reference_id")
        if not isinstance(reference_id, str) or not reference_id:
            raise RetryableError("Telesign answered without a reference_id", code="no_reference")
        status = payload.get("status") if isinstance(payload.get("status"), dict) else {}
        raw = str(status.get("code", ""))
        return SendResult(
            provider_message_id=reference_id,
            delivery_status=delivery_status(raw) or Delivery.QUEUED,
            provider_status=raw,
            sender=params.get("sender_id", ""),
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """``PUT /v1/verify/completion/{reference_id}``: the user completed the verification.

        It takes no idempotency key and needs none: completing a transaction again records the
        same completion.
        """
        if outcome not in self.reports:
            raise PermanentError(
                f"Telesign takes only completions (confirmed), not {outcome!r}",
                code="unsupported_outcome",
            )
        self._call(self.client.completion, provider_message_id)

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """The transaction's status as Telesign has it now (``GET /v1/verify/{reference_id}``)."""
        response = self._call(self.client.status, message.provider_message_id)
        return status_update(response.json if isinstance(response.json, dict) else {})

    def _call(self, method: Any, *args: Any, **params: Any) -> RestClient.Response:
        # The SDK raises no error for an error answer: it returns it, with the HTTP status.
        try:
            response = method(*args, **params)
        except requests.RequestException as exc:
            raise error_from_exception(exc) from exc
        if not 200 <= response.status_code < 300:
            raise error_from_response(response)
        return response
