"""Plivo Messaging backend (``plivo``): SMS with Plivo's Conversion Feedback API.

Messages are sent with ``trackable: true`` and a status callback ``url``; a conversion is
reported to ``POST /v1/account/{auth_id}/message/{message_uuid}/conversion/`` as ``CONVERTED``,
a message the host failed (or that expired) as ``NOT_CONVERTED``. The SDK has no method for that
call: it goes through the SDK client's own request machinery (session, auth, timeout, error
classes). Statuses arrive on the status-callback webhook (``webhooks/plivo.py``) and can be
fetched with ``fetch_status``.

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]`` (docs/providers/plivo.md):
``AUTH_ID`` and ``AUTH_TOKEN`` (else ``PLIVO_AUTH_ID``/``PLIVO_AUTH_TOKEN``); ``SRC`` or
``POWERPACK_UUID``; ``STATUS_CALLBACK``; ``WEBHOOK_SIGNATURES``; ``TIMEOUT``; ``BASE_URL`` (a
local fake).
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from django.core.checks import CheckMessage, Error, Warning
from django.utils import timezone
from plivo import RestClient
from plivo.exceptions import PlivoRestError
from plivo.rest.client import PLIVO_API

from ..conf import app_settings
from ..recipients import mask
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
    from requests import PreparedRequest, Response

    from ..models import Message

#: Plivo's ``message_state`` (API) and ``Status`` (status callback) -> normalized delivery
#: status. ``received`` (inbound) is not applied.
STATUSES: dict[str, str] = {
    #: What every send starts as: Plivo queues it to pace the carriers.
    "queued": Delivery.QUEUED,
    #: Handed to the carrier; the last status when the carrier returns no receipt.
    "sent": Delivery.SENT,
    "delivered": Delivery.DELIVERED,
    #: WhatsApp only, after ``delivered``.
    "read": Delivery.DELIVERED,
    #: The carrier's receipt said it did not reach the handset (with an ``ErrorCode``).
    "undelivered": Delivery.UNDELIVERED,
    #: Plivo could not hand it to a carrier (with an ``ErrorCode``).
    "failed": Delivery.FAILED,
    #: Refused before sending (the SDK's list of message states has it).
    "rejected": Delivery.REJECTED,
}

#: Statuses refining another at the same delivery status: ``read`` keeps a message delivered.
SUPERSEDES: dict[str, frozenset[str]] = {"read": frozenset({"delivered"})}

#: Our outcome -> the conversion ``status``. ``superseded``: the user converted through another
#: message of the verification (a resend).
CONVERSION_STATUSES: dict[str, str] = {
    "confirmed": "CONVERTED",
    "failed": "NOT_CONVERTED",
    "superseded": "CONVERTED_WITH_OTHERS",
}

#: Keyword arguments of ``messages.create`` a caller may pass through ``send(**options)``;
#: ``url`` overrides the status callback for one message. ``src``, ``dst``, ``text``,
#: ``trackable`` and ``powerpack_uuid`` are this backend's.
OPTIONS: frozenset[str] = frozenset(
    {"url", "log", "message_expiry", "dlt_entity_id", "dlt_template_id", "dlt_template_category"}
)

#: Signature schemes the webhook can check (``WEBHOOK_SIGNATURES``): V3 signs the URL, the nonce
#: and every POST parameter; V2, which Plivo's messaging pages document for SMS callbacks, signs
#: only the URL and the nonce.
SIGNATURES: tuple[str, ...] = ("v3", "v2")

#: Seconds the client waits for a connection and for each read (the SDK's default is 5).
DEFAULT_TIMEOUT = 10.0

#: A Powerpack UUID: a ``sender`` of this form is sent as ``powerpack_uuid``, not ``src``.
POWERPACK_UUID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE
)
#: A message UUID as Plivo gives them (the conversion and fetch paths take nothing else).
MESSAGE_UUID = POWERPACK_UUID
#: An Auth ID as the SDK checks it: ``MA`` (main account) or ``SA`` (subaccount) + 18.
AUTH_ID = re.compile(r"(MA|SA)[A-Z0-9]{18}")

#: A number as Plivo quotes one in an error (no "+"): masked before it is stored or logged.
_BARE_NUMBER = re.compile(r"(?<![\w+-])[1-9][0-9]{6,14}(?![\w-])")


def delivery_status(provider_status: str) -> str | None:
    """The normalized status of a Plivo message state; None for one that is not applied."""
    return STATUSES.get(provider_status)


def is_message_uuid(value: object) -> bool:
    return isinstance(value, str) and MESSAGE_UUID.fullmatch(value) is not None


class PlivoClient(RestClient):
    """The SDK's client, answering from ``base_url`` and keeping the HTTP status of an error.

    ``RestClient.request`` resets its ``base_uri`` to ``https://api.plivo.com/v1/Account`` on
    every call, so the host is swapped on the prepared request instead. ``process_response``
    raises the SDK's error classes; for 429 and 502/503 it raises a bare ``PlivoRestError``
    without Plivo's text, so the status and the body's ``error`` are kept on the exception.
    """

    def __init__(
        self, auth_id: str, auth_token: str, *, base_url: str | None, timeout: float
    ) -> None:
        super().__init__(auth_id, auth_token, timeout=timeout)
        self.api_root = (base_url or PLIVO_API).rstrip("/")

    def create_request(
        self, method: str, path: Any = None, data: Any = None, **kwargs: Any
    ) -> PreparedRequest:
        request = super().create_request(method, path, data, **kwargs)
        if request.url and request.url.startswith(PLIVO_API + "/"):
            request.url = self.api_root + request.url[len(PLIVO_API) :]
        return request

    def process_response(
        self,
        method: str,
        response: Response,
        response_type: Any = None,
        objects_type: Any = None,
    ) -> Any:
        try:
            return super().process_response(method, response, response_type, objects_type)
        except PlivoRestError as exc:
            exc.http_status = response.status_code  # type: ignore[attr-defined]
            exc.plivo_error = _error_text(response)  # type: ignore[attr-defined]
            raise

    def conversion(self, auth_id: str, message_uuid: str, status: str, timestamp: str) -> Any:
        """``POST /v1/account/{auth_id}/message/{message_uuid}/conversion/`` as Plivo documents
        it (lower case, unlike the SDK's ``/v1/Account/.../Message/``), through this client's
        session: the absolute-URL path the SDK's own Lookup resource takes."""
        url = (PLIVO_API, "v1", "account", auth_id, "message", message_uuid, "conversion", "")
        return self.request(
            "POST", url, {"status": status, "timestamp": timestamp}, is_lookup_request=True
        )


#: What a client call raises: Plivo's error classes (including the SDK's own argument checks,
#: raised as ``ValidationError`` before any request) and the transport's errors.
CLIENT_ERRORS = (PlivoRestError, requests.RequestException)


def error_from_exception(exc: PlivoRestError | requests.RequestException) -> ProviderError:
    """The provider error for one of ``CLIENT_ERRORS``.

    Plivo's API errors carry no code of their own, only HTTP statuses and an ``error`` text, so
    the code is the HTTP status ("429", "400"...). 429, 5xx, timeouts and connection errors are
    retryable; other 4xx and the SDK's argument checks (code: the SDK's class name) are not.
    """
    if isinstance(exc, requests.RequestException):
        retryable = isinstance(
            exc,
            requests.Timeout | requests.ConnectionError | requests.exceptions.ChunkedEncodingError,
        )
        side = RetryableError if retryable else PermanentError
        return side(_mask(str(exc)), code=type(exc).__name__)
    status = getattr(exc, "http_status", None)
    message = _mask(getattr(exc, "plivo_error", "") or str(exc))
    if status is None:
        return PermanentError(message, code=type(exc).__name__)
    if status == 429 or status >= 500:
        return RetryableError(message, code=status)
    return PermanentError(message, code=status)


class PlivoProvider(Provider):
    """Sends with ``messages.create(trackable=True)``; reports CONVERTED, NOT_CONVERTED and
    CONVERTED_WITH_OTHERS."""

    reports = frozenset(CONVERSION_STATUSES)
    channels = frozenset({Channel.SMS})
    #: ``sent`` is the last status when the carrier returns no receipt, ``queued`` stays when a
    #: callback was lost; a fetch may know more.
    sync_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})

    def superseded_outcome(self, message: Message) -> str | None:
        """``CONVERTED_WITH_OTHERS``, Plivo's own value for it, whatever the delivery status."""
        return "superseded"

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        auth_id = config.get("AUTH_ID") or os.environ.get("PLIVO_AUTH_ID")
        if not auth_id:
            messages.append(
                Warning(
                    f"Provider {key!r} has no AUTH_ID: every send fails.",
                    hint="Set AUTH_ID (or PLIVO_AUTH_ID) to the account's Auth ID.",
                    id="feedback_app.W120",
                )
            )
        elif not AUTH_ID.fullmatch(str(auth_id)):
            messages.append(
                Error(
                    f"Provider {key!r} has an AUTH_ID the Plivo SDK refuses.",
                    hint="An Auth ID is MA or SA followed by 18 capital letters or digits.",
                    id="feedback_app.E120",
                )
            )
        if not (config.get("AUTH_TOKEN") or os.environ.get("PLIVO_AUTH_TOKEN")):
            messages.append(
                Warning(
                    f"Provider {key!r} has no AUTH_TOKEN: every send fails and every status "
                    "callback is refused.",
                    hint="Set AUTH_TOKEN (or PLIVO_AUTH_TOKEN); it also checks "
                    "X-Plivo-Signature-V3.",
                    id="feedback_app.W121",
                )
            )
        if config.get("SRC") and config.get("POWERPACK_UUID"):
            messages.append(
                Error(
                    f"Provider {key!r} sets both SRC and POWERPACK_UUID.",
                    hint="Plivo takes one sender: a number or sender ID (SRC) or a Powerpack.",
                    id="feedback_app.E121",
                )
            )
        elif not (config.get("SRC") or config.get("POWERPACK_UUID")):
            messages.append(
                Warning(
                    f"Provider {key!r} has no SRC or POWERPACK_UUID: every send must name its "
                    "sender.",
                    hint="Set SRC (a Plivo number or sender ID) or POWERPACK_UUID.",
                    id="feedback_app.W122",
                )
            )
        if not (config.get("STATUS_CALLBACK") or app_settings.PUBLIC_URL):
            messages.append(
                Warning(
                    f"Provider {key!r} asks Plivo for no status callbacks.",
                    hint="Set FEEDBACK_APP['PUBLIC_URL'] or the provider's STATUS_CALLBACK.",
                    id="feedback_app.W123",
                )
            )
        signatures = config.get("WEBHOOK_SIGNATURES", SIGNATURES)
        if not _valid_signatures(signatures):
            messages.append(
                Error(
                    f"Provider {key!r} has WEBHOOK_SIGNATURES {signatures!r}.",
                    hint=f"A list of one or both of {', '.join(SIGNATURES)}.",
                    id="feedback_app.E122",
                )
            )
        return messages

    @cached_property
    def client(self) -> PlivoClient:
        """The Plivo client, built on first use (once per process: the registry caches us)."""
        auth_id, auth_token = self.auth_id, self.auth_token
        if not (auth_id and auth_token):
            # Without them the SDK reads the environment itself and raises on what it misses.
            raise PermanentError(
                f"{self.key}: set AUTH_ID and AUTH_TOKEN", code="missing_credentials"
            )
        try:
            return PlivoClient(
                auth_id,
                auth_token,
                base_url=self.config.get("BASE_URL"),
                timeout=self.config.get("TIMEOUT", DEFAULT_TIMEOUT),
            )
        except PlivoRestError as exc:  # an Auth ID of the wrong form
            raise PermanentError(str(exc), code="invalid_auth_id") from exc

    @property
    def auth_id(self) -> str | None:
        return self._setting("AUTH_ID", "PLIVO_AUTH_ID")

    @property
    def auth_token(self) -> str | None:
        """The Auth Token: it authenticates API calls and signs the status callbacks."""
        return self._setting("AUTH_TOKEN", "PLIVO_AUTH_TOKEN")

    @property
    def webhook_signatures(self) -> tuple[str, ...]:
        """The signature schemes the webhook accepts, best first."""
        allowed = self.config.get("WEBHOOK_SIGNATURES", SIGNATURES)
        return tuple(scheme for scheme in SIGNATURES if scheme in allowed)

    def status_callback(self) -> str | None:
        """``STATUS_CALLBACK``, else this key's webhook under ``PUBLIC_URL``, else None."""
        if self.config.get("STATUS_CALLBACK"):
            return self.config["STATUS_CALLBACK"]
        return webhook_url("plivo", self.key)

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
        """Send ``body`` with ``trackable`` on.

        ``sender`` is a number or sender ID (``src``) or a Powerpack UUID (``powerpack_uuid``);
        without it the ``SRC`` or ``POWERPACK_UUID`` setting applies. ``options`` are passed to
        ``messages.create`` (see ``OPTIONS``).
        """
        if channel != Channel.SMS:
            raise PermanentError(
                f"the Plivo backend sends sms, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Plivo options: {', '.join(sorted(unknown))}")
        sender = sender or self.config.get("SRC") or self.config.get("POWERPACK_UUID")
        if not sender:
            raise PermanentError(
                f"{self.key}: no sender; pass sender= or set SRC or POWERPACK_UUID",
                code="missing_sender",
            )
        params: dict[str, Any] = {"url": self.status_callback(), **options}
        if isinstance(params.get("log"), bool):
            params["log"] = "true" if params["log"] else "false"  # the SDK takes a string
        if POWERPACK_UUID.fullmatch(sender):
            params["powerpack_uuid"] = sender
        else:
            params["src"] = sender
        params = {name: value for name, value in params.items() if value is not None}
        try:
            response = self.client.messages.create(dst=to, text=body, trackable=True, **params)
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        uuids = getattr(response, "message_uuid", None) or []
        if len(uuids) != 1:
            # One destination gets one message_uuid; anything else is not a send we can track.
            raise PermanentError(
                f"Plivo answered {len(uuids)} message UUIDs for one destination",
                code="unexpected_response",
            )
        return SendResult(
            provider_message_id=str(uuids[0]),
            # The answer says "message(s) queued": every message starts queued.
            delivery_status=Delivery.QUEUED,
            provider_status="queued",
            sender=sender,
            metadata={"api_id": getattr(response, "api_id", "")},
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Post the conversion ``status`` with the time the outcome was recorded.

        Plivo takes no idempotency key; posting the same status again sets it again.
        """
        status = CONVERSION_STATUSES.get(outcome) if outcome in self.reports else None
        if status is None:
            raise PermanentError(
                f"Plivo takes confirmed, failed and superseded, not {outcome!r}",
                code="unsupported_outcome",
            )
        self._check_uuid(provider_message_id)
        timestamp = self._outcome_time(provider_message_id, outcome)
        try:
            self.client.conversion(
                self.client.session.auth.auth_id,
                provider_message_id,
                status,
                timestamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """The message's state as Plivo has it now; None for one that is not applied."""
        message_uuid = message.provider_message_id
        self._check_uuid(message_uuid)
        try:
            record = self.client.messages.get(message_uuid)
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        raw = getattr(record, "message_state", None) or ""
        status = delivery_status(raw)
        if status is None:
            return None
        detail: dict[str, Any] = {}
        error_code = getattr(record, "error_code", None)
        if error_code not in (None, "", "000"):
            detail["error_code"] = str(error_code)
        return StatusUpdate(
            provider_message_id=message_uuid,
            delivery_status=status,
            provider_status=raw,
            detail=detail,
            supersedes=SUPERSEDES.get(raw, frozenset()),
        )

    def _outcome_time(self, provider_message_id: str, outcome: str) -> datetime:
        """When the message entered the outcome reported (Plivo's ``timestamp``: when the status
        changed, not when it is reported); now if the history no longer says."""
        from ..models import MessageEvent
        from ..states import EventKind, Feedback

        # The expiry sweep reports an expired message as failed.
        states = [Feedback.FAILED, Feedback.EXPIRED] if outcome == "failed" else [outcome]
        at = (
            MessageEvent.objects.filter(
                message__provider=self.key,
                message__provider_message_id=provider_message_id,
                kind=EventKind.FEEDBACK,
                to_value__in=states,
            )
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return at or timezone.now()

    def _check_uuid(self, message_uuid: str) -> None:
        # Checked before any request: anything else could never succeed, and would be put in
        # the request's path.
        if not is_message_uuid(message_uuid):
            raise PermanentError(f"not a Plivo message UUID: {message_uuid!r}", code="invalid_uuid")

    def _setting(self, name: str, environment_variable: str) -> str | None:
        return self.config.get(name) or os.environ.get(environment_variable) or None


def _valid_signatures(signatures: object) -> bool:
    """A non-empty list or tuple of known schemes (a bare string would be read letter by
    letter)."""
    return (
        isinstance(signatures, list | tuple)
        and bool(signatures)
        and set(signatures) <= set(SIGNATURES)
    )


def _error_text(response: Response) -> str:
    """Plivo's ``error`` member (a text, or an object naming fields), else the body's text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    error = body.get("error") if isinstance(body, dict) else None
    if error is None:
        return response.text[:500]
    return error if isinstance(error, str) else str(error)


def _mask(text: str) -> str:
    """Plivo quotes numbers without "+"; ``ProviderError`` masks the ones with it."""
    return _BARE_NUMBER.sub(lambda match: mask(match[0]), text)
