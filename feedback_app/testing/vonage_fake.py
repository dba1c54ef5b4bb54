"""A local fake of the Vonage SMS API and Conversion API calls this app makes, for the real SDK.

``VonageFake`` is a WSGI app serving, under any path prefix (the demo mounts it at ``/vonage``):

- ``POST .../sms/json``: send an SMS (form fields as the SMS API takes them). Like the real API it
  answers HTTP 200 with ``{"message-count", "messages": [...]}`` whose per-part ``status`` is
  ``"0"`` or an error code with ``error-text``; a long text is split into parts, each with its
  own ``message-id``;
- ``POST .../conversions/sms``: a conversion (``message-id``, ``delivered``, ``timestamp``),
  answered 200 with an empty body, 401 for bad credentials, 402 when the account does not have
  the Conversion API (``conversion_enabled = False``) and 420 for invalid parameters.

Credentials are HTTP Basic (what ``vonage_sms`` sends) or ``api_key``/``api_secret`` fields.
``receipt()`` builds a delivery receipt as Vonage posts it, signed with the signature secret.
Example, in a host project's test::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.vonage_fake import API_KEY, API_SECRET, VonageFake

    fake = VonageFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"vonage": {"API_KEY": API_KEY, "API_SECRET": API_SECRET,
                                 "SIGNATURE_SECRET": SIGNATURE_SECRET, "FROM": "Acme",
                                 "BASE_URL": server.url}},
    }):
        message = feedback_app.send(provider="vonage", to="+447700900123", body="Code: 482913")
        fake.messages[message.provider_message_id].text  # "Code: 482913"

``fail_next`` makes the next requests fail (an SMS API status in a 200 answer, or an HTTP error),
``latency`` delays every answer. ``CarrierVonageFake`` (below) also plays the carrier: it posts
signed receipts to the callback each message was sent with. The fake logs nothing.

Not modelled (undocumented): what the Conversion API answers for a message-id it does not know
(the fake: 420), and whether it takes ``True``/``False`` as the SDK sends ``delivered`` (the
docs list ``true``, ``false``, ``0``, ``1``; the fake takes them in any case).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode

from .carrier import call_later, post, unreachable
from .server import read_body, reason, request_headers

logger = logging.getLogger(__name__)

#: Credentials the fake accepts unless told others.
API_KEY = "a1b2c3d4"
API_SECRET = "fake-api-secret"  # noqa: S105 (a test credential)
SIGNATURE_SECRET = "fake-signature-secret"  # noqa: S105 (a test credential)

_SEND = re.compile(r"(?:/.*)?/sms/json")
_CONVERSION = re.compile(r"(?:/.*)?/conversions/sms")
_NUMBER = re.compile(r"\+?[1-9][0-9]{6,14}")
_TIMESTAMP = "%Y-%m-%d %H:%M:%S"

#: SMS API status -> the ``error-text`` the fake answers with by default.
STATUS_TEXTS: dict[str, str] = {
    "1": "Throughput Rate Exceeded - please wait [ 30 ] and retry",
    "2": "Missing Parameters",
    "3": "Invalid Parameters",
    "4": "Bad Credentials",
    "5": "Internal Error",
    "6": "Invalid Message",
    "7": "Number Barred",
    "8": "Partner Account Barred",
    "9": "Partner Quota Violation",
    "10": "Too Many Existing Binds",
    "12": "Message Too Long",
    "15": "Invalid Sender Address",
    "23": "Invalid Callback Url",
    "29": "Non-Whitelisted Destination",
    "33": "Number De-activated",
}


#: Characters per part of a text (``type=text``) or unicode message, alone or concatenated.
_PART_SIZES = {"text": (160, 153), "unicode": (70, 67)}


@dataclass
class FakeSms:
    """One message (or one part of a long one) the fake accepted; it keeps the text, as Vonage
    does."""

    message_id: str
    to: str
    from_: str
    text: str
    type: str
    client_ref: str | None
    callback: str | None
    status_report_req: bool
    #: Ids of every part of the message this part belongs to (one: not a long message).
    part_ids: list[str]
    #: Every other field, as received.
    extra: dict[str, str] = field(default_factory=dict)
    #: Receipt statuses the carrier fake posted, oldest first.
    receipts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class FakeConversion:
    message_id: str
    delivered: bool
    timestamp: str | None


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it (credentials left out)."""

    method: str
    path: str
    form: dict[str, str]
    headers: dict[str, str]


@dataclass(frozen=True)
class _Failure:
    #: HTTP status of an HTTP error; None: an SMS API status in a 200 answer.
    http_status: int | None
    code: str
    text: str


class _HttpError(Exception):
    def __init__(self, status: int, payload: dict[str, Any] | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.payload = payload


class VonageFake:
    """WSGI app faking the SMS API's send and the Conversion API; see the module."""

    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        latency: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and state -------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, conversion, request and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer (the request is handled at once).
            self.latency = latency
            #: Whether the account has the Conversion API (enabled by Vonage support).
            self.conversion_enabled = True
            #: message-id -> message (each part of a long message under its own id).
            self.messages: dict[str, FakeSms] = {}
            #: Every conversion accepted, oldest first.
            self.conversions: list[FakeConversion] = []
            self.requests: list[FakeRequest] = []
            self._failures: deque[_Failure] = deque()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: str | None = None,
        http_status: int | None = None,
        message: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with an error: an SMS API ``status`` code in a 200
        answer (``"1"`` throttled, ``"5"`` internal error...), or ``http_status`` (429, 500...).
        ``message`` is its ``error-text`` (or an HTTP error body's ``title``)."""
        if (status is None) == (http_status is None):
            raise ValueError("give status or http_status")
        if status is not None:
            failure = _Failure(
                None, status, STATUS_TEXTS.get(status, "Error") if message is None else message
            )
        else:
            assert http_status is not None
            failure = _Failure(
                http_status, str(http_status), reason(http_status) if message is None else message
            )
        with self._lock:
            self._failures.extend(failure for _ in range(count))

    def requests_to(self, suffix: str) -> list[FakeRequest]:
        """Requests whose path ends with ``suffix`` (``/sms/json``, ``/conversions/sms``)."""
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    def receipt(
        self,
        message_id: str,
        status: str,
        *,
        err_code: str = "0",
        secret: str | None = SIGNATURE_SECRET,
        method: str = "md5hash",
        at: datetime | None = None,
    ) -> dict[str, str]:
        """The delivery receipt Vonage sends for ``message_id`` (a part's id), signed with
        ``secret`` under ``method`` (None: unsigned), as a dict of its parameters."""
        from ..webhooks.vonage import signature

        with self._lock:
            message = self.messages[message_id]
        at = at or datetime.now(UTC)
        params = {
            "msisdn": message.to.removeprefix("+"),
            "to": message.from_,
            "network-code": "23410",
            "messageId": message_id,
            "price": "0.03330000",
            "status": status,
            "scts": at.strftime("%y%m%d%H%M"),
            "err-code": err_code,
            "api-key": self.api_key,
            "message-timestamp": at.strftime(_TIMESTAMP),
        }
        if message.client_ref:
            params["client-ref"] = message.client_ref
        if secret is not None:
            params["timestamp"] = str(int(at.timestamp()))
            params["nonce"] = secrets.token_hex(8)
            params["sig"] = signature(params, secret, method)
        return params

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read_request(environ)
        payload: dict[str, Any] | None
        with self._lock:
            self.requests.append(request)
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            try:
                status, payload = self._handle(environ, request, failure)
            except _HttpError as exc:
                status, payload = exc.status, exc.payload
        if latency:
            time.sleep(latency)
        answered = self._answered(request, status, payload)
        body = b"" if payload is None else json.dumps(payload).encode()
        start_response(
            f"{status} {reason(status)}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
        )
        if answered:
            answered()
        return [body]

    def _handle(
        self, environ: dict[str, Any], request: FakeRequest, failure: _Failure | None
    ) -> tuple[int, dict[str, Any] | None]:
        send = _SEND.fullmatch(request.path)
        conversion = _CONVERSION.fullmatch(request.path)
        if failure is not None and failure.http_status is not None:
            raise _HttpError(
                failure.http_status,
                {
                    "type": f"https://developer.vonage.com/api-errors#{failure.http_status}",
                    "title": failure.text,
                },
            )
        if not (send or conversion):
            raise _HttpError(404, {"title": "Not Found", "detail": f"no resource {request.path}"})
        if request.method != "POST":
            raise _HttpError(405, {"title": "Method Not Allowed"})
        if send:
            if failure is not None:
                return 200, _error_answer(failure.code, failure.text)
            return 200, self._send(environ, request.form)
        self._conversion(environ, request.form)
        return 200, None

    def _credentials_ok(self, environ: dict[str, Any], form: dict[str, str]) -> bool:
        username, password = _basic_auth(environ)
        if not username:
            username, password = form.get("api_key", ""), form.get("api_secret", "")
        return username == self.api_key and secrets.compare_digest(password, self.api_secret)

    def _send(self, environ: dict[str, Any], form: dict[str, str]) -> dict[str, Any]:
        if not self._credentials_ok(environ, form):
            return _error_answer("4", STATUS_TEXTS["4"])
        for name in ("from", "to", "text"):
            if not form.get(name):
                return _error_answer("2", f"Missing {name} param")
        to, kind = form["to"], form.get("type", "text")
        if not _NUMBER.fullmatch(to):
            return _error_answer("3", "Invalid to address")
        if kind not in _PART_SIZES:
            return _error_answer("3", "Invalid type param")
        callback = form.get("callback")
        if callback is not None and (len(callback) > 100 or not callback.startswith("http")):
            return _error_answer("23", STATUS_TEXTS["23"])
        if len(form.get("client-ref", "")) > 100:
            return _error_answer("3", "Invalid client-ref param")
        ttl = form.get("ttl")
        if ttl is not None and not (ttl.isdigit() and 20000 <= int(ttl) <= 604800000):
            return _error_answer("3", "Invalid ttl param")
        single, concatenated = _PART_SIZES[kind]
        length = len(form["text"])
        count = 1 if length <= single else -(-length // concatenated)
        part_ids = [secrets.token_hex(8).upper() for _ in range(count)]
        known = {"from", "to", "text", "type", "client-ref", "callback", "status-report-req"}
        answers = []
        for part_id in part_ids:
            self.messages[part_id] = FakeSms(
                message_id=part_id,
                to=to,
                from_=form["from"],
                text=form["text"],
                type=kind,
                client_ref=form.get("client-ref"),
                callback=callback,
                status_report_req=form.get("status-report-req", "").lower() in ("true", "1"),
                part_ids=part_ids,
                extra={
                    name: value
                    for name, value in form.items()
                    if name not in known and name not in ("api_key", "api_secret")
                },
            )
            answer = {
                "to": to.removeprefix("+"),
                "message-id": part_id,
                "status": "0",
                "remaining-balance": "15.53590000",
                "message-price": "0.03330000",
                "network": "23410",
            }
            if form.get("client-ref"):
                answer["client-ref"] = form["client-ref"]
            answers.append(answer)
        return {"message-count": str(count), "messages": answers}

    def _conversion(self, environ: dict[str, Any], form: dict[str, str]) -> None:
        if not self._credentials_ok(environ, form):
            raise _HttpError(401, {"error-text": "Bad Credentials"})
        if not self.conversion_enabled:
            raise _HttpError(402, {"error-text": "Conversion API is not enabled for this account"})
        message_id, delivered = form.get("message-id"), form.get("delivered", "").lower()
        if not message_id or delivered not in ("true", "false", "0", "1"):
            raise _HttpError(420, {"error-text": "Missing or invalid message-id or delivered"})
        timestamp = form.get("timestamp")
        if timestamp is not None:
            try:
                datetime.strptime(timestamp, _TIMESTAMP)
            except ValueError:
                raise _HttpError(420, {"error-text": "Invalid timestamp"}) from None
        if message_id not in self.messages:
            raise _HttpError(420, {"error-text": f"Unknown message-id {message_id}"})
        self.conversions.append(FakeConversion(message_id, delivered in ("true", "1"), timestamp))

    def _answered(
        self, request: FakeRequest, status: int, payload: dict[str, Any] | None
    ) -> Callable[[], None] | None:
        """What happens once an answer is given (the carrier fake's receipts); None: nothing."""
        return None


class CarrierVonageFake(VonageFake):
    """A ``VonageFake`` whose messages are delivered, or not, and send signed receipts.

    Each message gets ``accepted`` after ``delays[0]`` seconds, then ``delivered`` or, for a
    number ``carrier.unreachable`` says is off (about ``undelivered_rate`` of them, always the
    same ones), ``failed`` with err-code 2 (absent subscriber) after ``delays[1]``. Receipts go to
    the message's ``callback``, else to the account webhook ``webhook_url()`` names (default:
    ``PUBLIC_URL`` + the ``vonage`` webhook path); they are signed with ``signature_secret`` under
    ``signature_method`` and sent as a form (``webhook_format="form"``) or JSON.
    """

    def __init__(
        self,
        *,
        signature_secret: str = SIGNATURE_SECRET,
        signature_method: str = "md5hash",
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        webhook_format: str = "form",
        webhook_url: Callable[[], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.signature_secret = signature_secret
        self.signature_method = signature_method
        self.delays = delays
        self.undelivered_rate = undelivered_rate
        self.webhook_format = webhook_format
        self.webhook_url = webhook_url or account_webhook_from_settings

    def _answered(
        self, request: FakeRequest, status: int, payload: dict[str, Any] | None
    ) -> Callable[[], None] | None:
        if status != 200 or not payload or not _SEND.fullmatch(request.path):
            return None
        sent = [m["message-id"] for m in payload.get("messages", []) if m.get("status") == "0"]
        if not sent:
            return None

        def schedule() -> None:
            # The number as E.164 (Vonage takes it without the "+"): the same draw as the others'.
            to = "+" + request.form.get("to", "").removeprefix("+")
            for part_id in sent:
                final = "failed" if unreachable(to, self.undelivered_rate) else "delivered"
                for delay, receipt in zip(self.delays, ("accepted", final), strict=True):
                    call_later(delay, self._call_back, part_id, receipt)

        return schedule

    def _call_back(self, message_id: str, status: str) -> None:
        with self._lock:
            message = self.messages.get(message_id)
            if message is None:
                return  # reset meanwhile
            message.receipts.append(status)
            url = message.callback
        url = url or self.webhook_url()
        if not url:
            logger.info("no delivery receipt webhook; receipt %s not sent", status)
            return
        params = self.receipt(
            message_id,
            status,
            err_code="2" if status == "failed" else "0",
            secret=self.signature_secret,
            method=self.signature_method,
        )
        if self.webhook_format == "json":
            post(url, json.dumps(params).encode(), {"Content-Type": "application/json"})
        else:
            post(
                url,
                urlencode(params).encode(),
                {"Content-Type": "application/x-www-form-urlencoded"},
            )


def account_webhook_from_settings(provider: str = "vonage") -> str | None:
    """The account-level receipt webhook as the Django settings describe it: ``PUBLIC_URL`` and
    the ``provider``'s webhook path; None without ``PUBLIC_URL``."""
    from ..providers.base import webhook_url

    return webhook_url("vonage", provider)


def _error_answer(status: str, text: str) -> dict[str, Any]:
    return {"message-count": "1", "messages": [{"status": status, "error-text": text}]}


def _read_request(environ: dict[str, Any]) -> FakeRequest:
    raw = read_body(environ)
    headers = request_headers(environ)
    form = {
        name: values[-1] for name, values in parse_qs(raw.decode(), keep_blank_values=True).items()
    }
    return FakeRequest(
        method=environ["REQUEST_METHOD"],
        path=environ.get("PATH_INFO", ""),
        form=form,
        headers=headers,
    )


def _basic_auth(environ: dict[str, Any]) -> tuple[str, str]:
    scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:
        return "", ""
    return username, password
