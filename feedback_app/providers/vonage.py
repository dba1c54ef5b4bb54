"""Vonage SMS API backend (``vonage``): SMS with delivery receipts and the Conversion API.

Messages are sent with ``vonage_sms.Sms.send`` (``POST rest.nexmo.com/sms/json``) with our public
id as ``client-ref``, a delivery receipt requested and, when the app knows its public URL, the
``vonage`` webhook as the per-message ``callback``. A conversion is reported with
``Sms.submit_sms_conversion`` (``POST api.nexmo.com/conversions/sms``): ``delivered=true`` when
the recipient used the message, ``delivered=false`` when it was failed or expired, as Vonage asks
("set to true if your user replied ... otherwise, set to false"). Delivery receipts arrive on the
webhook (``webhooks/vonage.py``); the SMS API has no call to fetch a message's status.

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]`` (docs/providers/vonage.md):
``API_KEY`` and ``API_SECRET`` (else ``VONAGE_API_KEY`` / ``VONAGE_API_SECRET``);
``SIGNATURE_SECRET`` and ``SIGNATURE_METHOD`` (else ``VONAGE_SIGNATURE_SECRET`` /
``VONAGE_SIGNATURE_METHOD``) for the signed receipts; ``FROM``; ``CALLBACK``; ``TIMEOUT``;
``BASE_URL`` (a local fake).
"""

from __future__ import annotations

import logging
import os
import re
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests
from django.core.checks import CheckMessage, Error, Warning
from pydantic import ValidationError
from requests.adapters import HTTPAdapter

from ..conf import app_settings
from ..recipients import mask_numbers_in
from ..states import Channel, Delivery
from .base import PermanentError, Provider, ProviderError, RetryableError, SendResult, webhook_url

if TYPE_CHECKING:
    from vonage import Vonage

    from ..models import Message

logger = logging.getLogger(__name__)

#: Delivery receipt ``status`` -> normalized delivery status (the webhook applies these).
STATUSES: dict[str, str] = {
    #: Intermediate: the target carrier accepted the message.
    "accepted": Delivery.SENT,
    #: Intermediate: the message is being delivered (the handset may be off for now).
    "buffered": Delivery.SENT,
    #: Final: delivered to the handset (or to the carrier, for carrier receipts).
    "delivered": Delivery.DELIVERED,
    #: Final: expired on the carrier's side, or Vonage's own receipt after 72 hours without one.
    "expired": Delivery.UNDELIVERED,
    #: Final: the target carrier failed to deliver it.
    "failed": Delivery.UNDELIVERED,
    #: Final: the target carrier rejected it.
    "rejected": Delivery.REJECTED,
    #: The carrier sent a status Vonage does not document.
    "unknown": Delivery.UNKNOWN,
}

#: A receipt status -> the statuses it refines at the same delivery status.
SUPERSEDES: dict[str, frozenset[str]] = {"buffered": frozenset({"accepted"})}

#: Outcome -> the Conversion API's ``delivered``.
CONVERSIONS: dict[str, bool] = {"confirmed": True, "failed": False}

#: SMS API ``status`` codes (in a 200 answer's ``messages[]``) worth trying again: throttled,
#: internal error, too many existing binds ("back-off and retry"). Every other non-zero code
#: is permanent (missing or invalid parameters, credentials, barred numbers, no credit...).
RETRYABLE_STATUSES: frozenset[str] = frozenset({"1", "5", "10"})

#: What an ``SmsError`` says: ``vonage_sms`` raises it with the status code and ``error-text``
#: in its message only.
_SMS_ERROR = re.compile(r"error code (?P<code>\d+): (?P<text>.*)", re.DOTALL)

#: The Conversion API's answer when the account does not have it enabled (Vonage support
#: enables it on request).
CONVERSION_NOT_ENABLED = "conversion_not_enabled"

#: ``SmsMessage`` fields a caller may pass to ``send`` as options.
OPTIONS: frozenset[str] = frozenset(
    {
        "ttl",
        "type",
        "callback",
        "status_report_req",
        "message_class",
        "account_ref",
        "entity_id",
        "content_id",
        "trusted_number",
    }
)

#: The SMS API refuses a ``callback`` longer than this (status 23; ``SmsMessage`` checks it too).
CALLBACK_MAX_LENGTH = 100

#: ``SIGNATURE_METHOD`` values, as the dashboard names them: ``md5hash`` (the default) is an MD5
#: of the parameters and the secret, the others an HMAC keyed with the secret.
SIGNATURE_METHODS: frozenset[str] = frozenset({"md5hash", "md5", "sha1", "sha256", "sha512"})
DEFAULT_SIGNATURE_METHOD = "md5hash"

#: Seconds to wait for a connection and for each read; the SDK sets none by default.
DEFAULT_TIMEOUT = 10.0

#: GSM 03.38 basic and extension characters: a body with any other needs ``type="unicode"``.
_GSM = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\f^{}\\[~]|€"
)


def delivery_status(provider_status: str) -> str | None:
    """The normalized status of a receipt ``status``; None for one that is not applied."""
    return STATUSES.get(provider_status)


def is_gsm(text: str) -> bool:
    return all(character in _GSM for character in text)


def setting(config: dict[str, Any], name: str) -> str | None:
    """``config[name]``, else the environment's ``VONAGE_<name>``; None when neither is set."""
    return config.get(name) or os.environ.get(f"VONAGE_{name}") or None


def signature_method(config: dict[str, Any]) -> str:
    return (setting(config, "SIGNATURE_METHOD") or DEFAULT_SIGNATURE_METHOD).lower()


class _RedactedLog(logging.Filter):
    """Keeps the body, the numbers and the credentials out of the SDK's log (logger ``vonage``):
    its DEBUG line for each request shows the form (text, to) and the headers (the Basic
    credentials of the previous request), its error WARNING the answer's text."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        head, separator, _ = text.partition(", with data: ")
        if separator:
            record.msg, record.args = f"{head} (data and headers not logged)", ()
        elif "Http Response Error" in text:
            record.msg, record.args = mask_numbers_in(text), ()
        return True


_REDACTED_LOG = _RedactedLog()


class _Adapter(HTTPAdapter):
    """The transport under the SDK's ``requests`` session: a default timeout (the SDK's own
    option takes whole seconds only), and, for a local fake on plain HTTP, the ``https://`` URL
    the SDK always builds sent as ``http://`` (the SDK has no scheme option)."""

    def __init__(self, *, timeout: float, plain_http: bool, max_retries: Any) -> None:
        super().__init__(max_retries=max_retries)
        self.timeout = timeout
        self.plain_http = plain_http

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        if self.plain_http and request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url.removeprefix("https://")
        return super().send(request, **kwargs)


def error_from_exception(exc: Exception) -> ProviderError:
    """The provider error for what a ``vonage`` call raised, with Vonage's code and text.

    A non-zero SMS API status is retryable for ``RETRYABLE_STATUSES`` and permanent otherwise;
    HTTP 429 and 5xx, timeouts and connection errors are retryable; other HTTP 4xx are permanent,
    402 (Conversion API not enabled) with the code ``conversion_not_enabled``.
    """
    from vonage_http_client.errors import HttpRequestError
    from vonage_sms.errors import PartialFailureError, SmsError

    if isinstance(exc, ProviderError):
        return exc  # ours already (missing credentials, found before any request)
    if isinstance(exc, PartialFailureError):
        # Some parts of a long message were refused: the first refusal says why.
        failed = [m for m in exc.response["messages"] if m.get("status") != "0"]
        code, text = failed[0].get("status", ""), failed[0].get("error-text", "")
        return _status_error(code, f"part of the message refused: {text}")
    if isinstance(exc, SmsError):
        match = _SMS_ERROR.search(str(exc))
        if match is None:
            return PermanentError(str(exc), code=type(exc).__name__)
        return _status_error(match["code"], match["text"])
    if isinstance(exc, HttpRequestError):
        status = exc.response.status_code
        text = _error_text(exc.response)
        if status == 402:
            return PermanentError(
                f"the Conversion API is not enabled for this account (HTTP 402; Vonage support "
                f"enables it): {text}",
                code=CONVERSION_NOT_ENABLED,
            )
        if status == 429 or status >= 500:
            return RetryableError(text, code=status)
        return PermanentError(text, code=status)
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return RetryableError(str(exc), code=type(exc).__name__)
    return PermanentError(str(exc), code=type(exc).__name__)


def _status_error(code: str, text: str) -> ProviderError:
    error = RetryableError if code in RETRYABLE_STATUSES else PermanentError
    return error(text.strip(), code=code)


def _error_text(response: requests.Response) -> str:
    """What an error answer says: its JSON's own words when it has some, else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        # SMS/Conversion (``error-text``) and RFC 7807 (``title``/``detail``) shapes.
        parts = [body.get(key) for key in ("error-text", "title", "detail")]
        text = ": ".join(str(part) for part in parts if part)
        if text:
            return text
    return response.text[:500]


class VonageProvider(Provider):
    """``Sms.send`` with a delivery receipt; ``Sms.submit_sms_conversion`` true/false."""

    reports = frozenset(CONVERSIONS)
    channels = frozenset({Channel.SMS})

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        for name, check_id in (
            ("API_KEY", "feedback_app.E110"),
            ("API_SECRET", "feedback_app.E111"),
        ):
            if not setting(config, name):
                messages.append(
                    Error(
                        f"Provider {key!r} has no {name}: nothing can be sent.",
                        hint=f"Set {name} (or VONAGE_{name}) from the Vonage dashboard's "
                        "API settings.",
                        id=check_id,
                    )
                )
        if not setting(config, "SIGNATURE_SECRET"):
            messages.append(
                Warning(
                    f"Provider {key!r} has no SIGNATURE_SECRET: every delivery receipt will be "
                    "refused.",
                    hint="Ask Vonage support to sign webhooks, then set SIGNATURE_SECRET and "
                    "SIGNATURE_METHOD (or VONAGE_SIGNATURE_SECRET / VONAGE_SIGNATURE_METHOD) as "
                    "the dashboard shows them.",
                    id="feedback_app.W112",
                )
            )
        method = signature_method(config)
        if method not in SIGNATURE_METHODS:
            messages.append(
                Error(
                    f"Provider {key!r} has SIGNATURE_METHOD {method!r}.",
                    hint=f"Use one of {', '.join(sorted(SIGNATURE_METHODS))}, as the dashboard "
                    "names them (md5hash is Vonage's default).",
                    id="feedback_app.E113",
                )
            )
        callback = config.get("CALLBACK")
        if not (callback or app_settings.PUBLIC_URL):
            messages.append(
                Warning(
                    f"Provider {key!r} gives Vonage no per-message callback URL: receipts go to "
                    "the account's default delivery receipt webhook, if one is set.",
                    hint="Set FEEDBACK_APP['PUBLIC_URL'] or the provider's CALLBACK, or set the "
                    "account's delivery receipt webhook to this key's webhook URL.",
                    id="feedback_app.W114",
                )
            )
        else:
            url = callback or webhook_url("vonage", key)
            if len(url) > CALLBACK_MAX_LENGTH:
                messages.append(
                    Warning(
                        f"Provider {key!r}: the callback URL {url!r} is longer than the "
                        f"{CALLBACK_MAX_LENGTH} characters Vonage takes; messages are sent "
                        "without it.",
                        hint="Use a shorter CALLBACK (or PUBLIC_URL), or set the account's "
                        "delivery receipt webhook instead.",
                        id="feedback_app.W115",
                    )
                )
        return messages

    @cached_property
    def client(self) -> Vonage:
        """The Vonage client, built on first use (once per process: the registry caches us)."""
        from vonage import Auth, HttpClientOptions, Vonage

        api_key, api_secret = setting(self.config, "API_KEY"), setting(self.config, "API_SECRET")
        if not (api_key and api_secret):
            raise PermanentError(
                f"{self.key}: set API_KEY and API_SECRET", code="missing_credentials"
            )
        options: dict[str, Any] = {}
        base_url = self.config.get("BASE_URL")
        plain_http = False
        if base_url:
            # The SDK builds https://{host}{path}: a host with a path prefix reaches a fake
            # mounted under one (the demo serves this one under /vonage).
            parts = urlsplit(base_url)
            host = parts.netloc + parts.path.rstrip("/")
            options = {"api_host": host, "rest_host": host}
            plain_http = parts.scheme == "http"
        # The signature secret is not given to the sending client: with one, vonage_sms signs
        # each request with an HMAC instead of the API secret, and cannot make the default
        # "md5hash" signatures (docs/providers/vonage.md, "Signatures").
        client = Vonage(Auth(api_key=api_key, api_secret=api_secret), HttpClientOptions(**options))
        # The SDK's HTTP client keeps its requests session private; mounting our adapter on it
        # is the only way to set a sub-second timeout or reach a plain-HTTP fake.
        logging.getLogger("vonage").addFilter(_REDACTED_LOG)  # once: filters are a set
        session = client.http_client._session
        adapter = _Adapter(
            timeout=float(self.config.get("TIMEOUT", DEFAULT_TIMEOUT)),
            plain_http=plain_http,
            max_retries=session.get_adapter("https://").max_retries,
        )
        session.mount("https://", adapter)
        return client

    def callback_url(self) -> str | None:
        """``CALLBACK``, else this key's webhook under ``PUBLIC_URL``; None without either, or
        when it is longer than Vonage takes (W115): the account's default webhook applies."""
        url = self.config.get("CALLBACK") or webhook_url("vonage", self.key)
        if url and len(url) > CALLBACK_MAX_LENGTH:
            logger.warning(
                "feedback_app: %s callback URL longer than %s characters, not sent",
                self.key,
                CALLBACK_MAX_LENGTH,
            )
            return None
        return url

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
        """Send ``body`` to the E.164 number ``to`` with a delivery receipt.

        ``sender`` is a number or an alphanumeric sender ID (else ``FROM``). ``options`` are
        ``SmsMessage`` fields (``ttl``, ``type``, ``callback``, ``entity_id``...; see
        ``OPTIONS``); ``type`` defaults to ``unicode`` for a body outside the GSM alphabet.
        """
        from vonage_sms import SmsMessage

        if channel != Channel.SMS:
            raise PermanentError(
                f"the Vonage SMS API sends SMS, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Vonage SMS options: {', '.join(sorted(unknown))}")
        origin = sender or self.config.get("FROM")
        if not origin:
            raise PermanentError(
                f"{self.key}: no sender; pass sender= or set FROM", code="missing_sender"
            )
        fields: dict[str, Any] = {
            "callback": self.callback_url(),
            "status_report_req": True,
            "type": "text" if is_gsm(body) else "unicode",
            **options,
        }
        fields = {name: value for name, value in fields.items() if value is not None}
        try:
            # Vonage takes numbers without the "+" (its examples; the SDK's from_ docstring).
            message = SmsMessage(
                to=to.removeprefix("+"),
                from_=origin.removeprefix("+"),
                text=body,
                client_ref=message_id,
                **fields,
            )
        except ValidationError as exc:
            # Only the field names and what was wrong: the values include the body and number.
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()
            )
            raise PermanentError(f"invalid SMS: {problems}", code="invalid_request") from exc
        try:
            response = self.client.sms.send(message)
        except Exception as exc:
            raise error_from_exception(exc) from exc
        parts = response.messages
        metadata: dict[str, Any] = {}
        if len(parts) > 1:
            # A long message is sent in parts, each with its own id and receipts; the first
            # part's id is the message's, the receipts of the others are found by client-ref.
            metadata["part_message_ids"] = [part.message_id for part in parts]
        if parts[0].network:
            metadata["network"] = parts[0].network
        price = _total_price(parts)
        if price is not None:
            metadata["message_price"] = price
        return SendResult(
            provider_message_id=parts[0].message_id or "",
            delivery_status=Delivery.QUEUED,
            sender=origin,
            metadata=metadata,
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Submit the conversion: ``delivered=true`` for confirmed, ``false`` for failed.

        The timestamp is the confirmation's time when the message has one (Vonage wants when
        the user acted), else now. The API takes no idempotency key; submitting the same
        conversion again after a lost answer repeats the same fact.
        """
        delivered = CONVERSIONS.get(outcome)
        if delivered is None:
            raise PermanentError(
                f"Vonage takes confirmed or failed conversions, not {outcome!r}",
                code="unsupported_outcome",
            )
        if not provider_message_id:
            raise PermanentError("no Vonage message-id to report on", code="invalid_message_id")
        arguments: dict[str, Any] = {"delivered": delivered}
        timestamp = self._confirmed_at(provider_message_id) if delivered else None
        if timestamp is not None:
            # Left out otherwise: the SDK's validation refuses an explicit None, and sends now.
            arguments["timestamp"] = timestamp
        try:
            self.client.sms.submit_sms_conversion(provider_message_id, **arguments)
        except Exception as exc:
            raise error_from_exception(exc) from exc

    def superseded_outcome(self, message: Message) -> str | None:
        # Vonage reads conversions, with receipts, as a route's quality: "false" for a message
        # that was not delivered says the route failed it; a delivered one the user did not
        # need (a resend was used) says nothing about the route, so it is not reported.
        return None if message.delivery_status == Delivery.DELIVERED else "failed"

    def _confirmed_at(self, provider_message_id: str) -> datetime | None:
        from ..models import Message

        confirmed_at = (
            Message.objects.filter(provider=self.key, provider_message_id=provider_message_id)
            .values_list("confirmed_at", flat=True)
            .first()
        )
        # The API takes UTC ("yyyy-MM-dd HH:mm:ss"); the SDK formats the datetime as given.
        return confirmed_at.astimezone(UTC) if confirmed_at else None


def _total_price(parts: list[Any]) -> str | None:
    prices = [part.message_price for part in parts if part.message_price]
    if not prices:
        return None
    try:
        return f"{sum(float(price) for price in prices):.8f}"
    except ValueError:
        return None
