"""Twilio Programmable Messaging backend (``twilio``): SMS, MMS and WhatsApp with Message Feedback.

Messages are created with ``ProvideFeedback=true`` and a status callback; a conversion is reported
as Feedback ``Outcome=confirmed``, and nothing else is ever posted (Twilio asks apps never to send
``unconfirmed``: a message stays unconfirmed by itself). Statuses arrive on the status-callback
webhook (``webhooks/twilio.py``) and can be fetched with ``fetch_status``.

Settings read from the provider's entry in ``FEEDBACK_APP["PROVIDERS"]`` (docs/providers/twilio.md):
``ACCOUNT_SID`` and ``AUTH_TOKEN``, or ``API_KEY`` and ``API_SECRET`` with ``ACCOUNT_SID`` (each
else the environment: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_API_KEY``,
``TWILIO_API_SECRET``); ``FROM`` and/or ``MESSAGING_SERVICE_SID``; ``STATUS_CALLBACK``;
``WEBHOOK_SHARED_KEYS``; ``TIMEOUT``; ``REGION`` and ``EDGE``; ``BASE_URL`` (a local fake).
"""

from __future__ import annotations

import os
import re
from functools import cached_property
from typing import TYPE_CHECKING, Any

import requests
from django.core.checks import CheckMessage, Warning
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

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
    from twilio.rest.api.v2010.account.message import MessageInstance

    from ..models import Message

#: Twilio's ``MessageStatus`` -> normalized delivery status; used by ``send``, ``fetch_status``
#: and the status-callback webhook. Statuses not listed (``receiving``/``received`` are inbound,
#: ``partially_delivered`` is deprecated) are not applied.
STATUSES: dict[str, str] = {
    #: Initial status without a Messaging Service.
    "queued": Delivery.QUEUED,
    #: Initial status with a Messaging Service (``scheduled``: sent later at ``send_at``).
    "accepted": Delivery.QUEUED,
    "scheduled": Delivery.QUEUED,
    "sending": Delivery.QUEUED,
    #: The carrier accepted it; often the last status when the carrier sends no receipt.
    "sent": Delivery.SENT,
    "delivered": Delivery.DELIVERED,
    #: WhatsApp and RCS read receipts come after ``delivered``.
    "read": Delivery.DELIVERED,
    "undelivered": Delivery.UNDELIVERED,
    #: Not sent at all (queue overflow, validity period expired, account suspended...).
    "failed": Delivery.FAILED,
    #: A scheduled message canceled before it was sent.
    "canceled": Delivery.REJECTED,
}

#: ``MessageStatus`` -> the statuses it refines at the same delivery status: a WhatsApp or RCS
#: ``read`` after ``delivered`` keeps the message delivered and records the read receipt.
SUPERSEDES: dict[str, frozenset[str]] = {"read": frozenset({"delivered"})}

#: A Message SID, as Twilio's API validates it (Feedback's ``MessageSid`` path parameter).
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

#: Keyword arguments of ``MessageList.create`` a caller may pass through ``send(**options)``.
#: Those this backend sets itself (to, from_, messaging_service_sid, body, provide_feedback) are
#: not among them: the sender is ``send``'s ``sender``.
OPTIONS: frozenset[str] = frozenset(
    {
        "validity_period",
        "message_intent",
        "media_url",
        "content_sid",
        "content_variables",
        "smart_encoded",
        "shorten_urls",
        "schedule_type",
        "send_at",
        "send_as_mms",
        "attempt",
        "risk_check",
        "persistent_action",
        "fallback_from",
        "status_callback",
        "application_sid",
        "traffic_type",
        "address_retention",
        "content_retention",
    }
)

#: Seconds the Twilio HTTP client waits for a connection and for each read: the SDK sets none,
#: and a hung request would hold an outbox call past CLAIM_TIMEOUT.
DEFAULT_TIMEOUT = 10.0

#: Twilio's code for "Too many requests" (HTTP 429): not processed, safe to retry after a while.
TOO_MANY_REQUESTS = 20429

_CHANNELS = frozenset({Channel.SMS, Channel.MMS, Channel.WHATSAPP})


def delivery_status(provider_status: str) -> str | None:
    """The normalized status of a Twilio ``MessageStatus``; None for one that is not applied."""
    return STATUSES.get(provider_status)


def is_message_sid(value: object) -> bool:
    return isinstance(value, str) and MESSAGE_SID.fullmatch(value) is not None


#: What a Twilio client call raises: Twilio's error responses (``TwilioRestException``, and
#: ``TwilioServiceException`` for RFC 9457 bodies; neither subclasses the other) and the
#: transport's errors (``requests``, under ``TwilioHttpClient``).
CLIENT_ERRORS = (TwilioException, requests.RequestException)


def error_from_exception(exc: TwilioException | requests.RequestException) -> ProviderError:
    """The provider error for one of ``CLIENT_ERRORS``, keeping Twilio's code and message.

    HTTP 429 (code 20429), 5xx, timeouts and connection errors are retryable; other 4xx
    (validation, authentication, not found) and client-side errors are permanent. A problem
    details body without an integer ``status`` is retryable: nothing says it is final.
    """
    if isinstance(exc, TwilioRestException):
        status, code, message = exc.status, exc.code, exc.msg
    elif isinstance(exc, TwilioServiceException):
        # RFC 9457 problem details: ``detail`` says what was wrong with this request.
        status, code, message = exc.status, exc.code, exc.detail or exc.title
    elif isinstance(
        exc,
        requests.Timeout | requests.ConnectionError | requests.exceptions.ChunkedEncodingError,
    ):
        return RetryableError(str(exc), code=type(exc).__name__)
    else:
        return PermanentError(str(exc), code=type(exc).__name__)
    if not isinstance(status, int) or isinstance(status, bool):
        # A problem body's ``status`` is whatever the body said (it may be missing, null or a
        # string); with no HTTP status to go by, let the outbox try again, within its limits.
        return RetryableError(message or str(exc), code=code)
    if status == 429 or code == TOO_MANY_REQUESTS or status >= 500:
        return RetryableError(message, code=code)
    return PermanentError(message, code=code)


class TwilioProvider(Provider):
    """Sends with ``messages.create(provide_feedback=True)``; reports ``confirmed`` only."""

    reports = frozenset({"confirmed"})
    channels = _CHANNELS
    #: ``sent`` is often final when the carrier returns no receipt, and ``queued`` stays when a
    #: callback was lost (one that came before the send committed, docs/webhooks.md); a fetch
    #: may know more.
    sync_statuses = frozenset({Delivery.QUEUED, Delivery.SENT})

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = []
        if not (config.get("AUTH_TOKEN") or os.environ.get("TWILIO_AUTH_TOKEN")):
            messages.append(
                Warning(
                    f"Provider {key!r} has no AUTH_TOKEN: every status callback will be refused.",
                    hint="Set AUTH_TOKEN (or TWILIO_AUTH_TOKEN); it validates X-Twilio-Signature.",
                    id="feedback_app.W101",
                )
            )
        if not (config.get("STATUS_CALLBACK") or app_settings.PUBLIC_URL):
            messages.append(
                Warning(
                    f"Provider {key!r} asks Twilio for no status callbacks.",
                    hint="Set FEEDBACK_APP['PUBLIC_URL'] or the provider's STATUS_CALLBACK, or "
                    "set the callback on the Messaging Service.",
                    id="feedback_app.W102",
                )
            )
        return messages

    @cached_property
    def client(self) -> Client:
        """The Twilio client, built on first use (once per process: the registry caches us)."""
        account_sid = self._setting("ACCOUNT_SID", "TWILIO_ACCOUNT_SID")
        api_key = self._setting("API_KEY", "TWILIO_API_KEY")
        if api_key:
            username, password = api_key, self._setting("API_SECRET", "TWILIO_API_SECRET")
        else:
            username, password = account_sid, self.auth_token
        if not (account_sid and username and password):
            # Without them the SDK would send an unauthenticated request and get a 401 back.
            raise PermanentError(
                f"{self.key}: set ACCOUNT_SID and AUTH_TOKEN (or API_KEY and API_SECRET)",
                code="missing_credentials",
            )
        client = Client(
            username,
            password,
            account_sid=account_sid,
            region=self.config.get("REGION"),
            edge=self.config.get("EDGE"),
            http_client=TwilioHttpClient(timeout=self.config.get("TIMEOUT", DEFAULT_TIMEOUT)),
        )
        base_url = self.config.get("BASE_URL")
        if base_url:
            # The Api domain builds every Messages URL from its base_url (hard-coded to
            # https://api.twilio.com); edge and region would rewrite the fake's host.
            client.api.base_url = base_url
            client.edge = client.region = None
        return client

    @property
    def auth_token(self) -> str | None:
        """The account's Auth Token: it signs status callbacks that carry no shared-key header."""
        return self._setting("AUTH_TOKEN", "TWILIO_AUTH_TOKEN")

    def shared_key(self, key_id: str) -> str | None:
        """The secret of the webhook SharedKey ``key_id`` (``WEBHOOK_SHARED_KEYS``), if known."""
        return (self.config.get("WEBHOOK_SHARED_KEYS") or {}).get(key_id)

    def status_callback(self) -> str | None:
        """``STATUS_CALLBACK``, else this key's webhook under ``PUBLIC_URL``, else None.

        Without one Twilio uses the Messaging Service's callback, if it has one.
        """
        if self.config.get("STATUS_CALLBACK"):
            return self.config["STATUS_CALLBACK"]
        return webhook_url("twilio", self.key)

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
        """Create the message with feedback enabled.

        ``sender`` is a phone number, short code or alphanumeric ID (``From``) or a Messaging
        Service SID; without it the ``FROM`` and ``MESSAGING_SERVICE_SID`` settings apply.
        ``options`` are passed to ``messages.create`` (``validity_period``, ``message_intent``,
        ``media_url``..., see ``OPTIONS``).
        """
        if channel not in _CHANNELS:
            raise PermanentError(
                f"Twilio Messaging sends sms, mms and whatsapp, not {channel!r}",
                code="unsupported_channel",
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown Twilio options: {', '.join(sorted(unknown))}")
        params: dict[str, Any] = {"status_callback": self.status_callback(), **options}
        if sender and MESSAGING_SERVICE_SID.fullmatch(sender):
            params["messaging_service_sid"] = sender
        elif sender:
            params["from_"] = sender
        else:
            params["from_"] = self.config.get("FROM")
            params["messaging_service_sid"] = self.config.get("MESSAGING_SERVICE_SID")
        if not params.get("from_") and not params.get("messaging_service_sid"):
            raise PermanentError(
                f"{self.key}: no sender; pass sender= or set FROM or MESSAGING_SERVICE_SID",
                code="missing_sender",
            )
        if channel == Channel.WHATSAPP:
            to = _whatsapp(to)
            if params.get("from_"):
                params["from_"] = _whatsapp(params["from_"])
        # Leave out what is not set: the SDK's marker for an absent field is values.unset.
        params = {name: value for name, value in params.items() if value is not None}
        try:
            message = self.client.messages.create(to=to, body=body, provide_feedback=True, **params)
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        raw = message.status or ""
        return SendResult(
            provider_message_id=message.sid,
            delivery_status=delivery_status(raw) or Delivery.QUEUED,
            provider_status=raw,
            sender=message.from_ or message.messaging_service_sid or params.get("from_", ""),
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Post Feedback ``Outcome=confirmed``.

        Twilio takes no idempotency key; posting ``confirmed`` again (after a timeout whose
        request did arrive) sets the same outcome again.
        """
        if outcome not in self.reports:
            raise PermanentError(
                f"Twilio takes only confirmed feedback, not {outcome!r}", code="unsupported_outcome"
            )
        self._check_sid(provider_message_id)
        try:
            self.client.messages(provider_message_id).feedback.create(outcome="confirmed")
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """The message's status as Twilio has it now; None for a status that is not applied."""
        sid = message.provider_message_id
        self._check_sid(sid)
        try:
            instance = self.client.messages(sid).fetch()
        except CLIENT_ERRORS as exc:
            raise error_from_exception(exc) from exc
        return _status_update(instance)

    def _check_sid(self, sid: str) -> None:
        # Checked before any request: a malformed SID can never succeed.
        if not is_message_sid(sid):
            raise PermanentError(f"not a Twilio Message SID: {sid!r}", code="invalid_sid")

    def _setting(self, name: str, environment_variable: str) -> str | None:
        return self.config.get(name) or os.environ.get(environment_variable) or None


def _whatsapp(address: str) -> str:
    return address if address.startswith("whatsapp:") else f"whatsapp:{address}"


def _status_update(instance: MessageInstance) -> StatusUpdate | None:
    raw = instance.status or ""
    status = delivery_status(raw)
    if status is None:
        return None
    detail: dict[str, Any] = {}
    if instance.error_code:
        # A string, as the status callback's ErrorCode is.
        detail["error_code"] = str(instance.error_code)
    return StatusUpdate(
        provider_message_id=instance.sid,
        delivery_status=status,
        provider_status=raw,
        at=instance.date_updated,
        detail=detail,
        supersedes=SUPERSEDES.get(raw, frozenset()),
    )
