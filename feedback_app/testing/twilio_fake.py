"""A local fake of the Twilio Messages API calls this app makes, for the real twilio client.

``TwilioFake`` is a WSGI app serving, under ``/2010-04-01/Accounts/{AccountSid}/``:

- ``POST Messages.json``: create a message (form fields as Twilio validates them);
- ``GET Messages/{Sid}.json``: fetch it;
- ``POST Messages/{Sid}/Feedback.json``: set its feedback outcome.

Requests need HTTP Basic auth with the account's Auth Token or an API key; errors are Twilio's
JSON shape ``{"code", "message", "more_info", "status"}``, which the SDK raises as
``TwilioRestException``. Example, in a host project's test::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, TwilioFake

    fake = TwilioFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"twilio": {"ACCOUNT_SID": ACCOUNT_SID, "AUTH_TOKEN": AUTH_TOKEN,
                                 "FROM": "+15005550006", "BASE_URL": server.url}},
    }):
        message = feedback_app.send(provider="twilio", to="+14155550123", body="Code: 482913")
        fake.messages[message.provider_message_id].body  # "Code: 482913"
        feedback_app.confirm(message)  # after commit, the outbox posts the feedback
        fake.feedback[message.provider_message_id]  # ["confirmed"]

docs/providers/twilio.md has it as a complete pytest test.

``fail_next`` makes the next requests fail (429, 5xx...; ``problem=True`` in the RFC 9457 shape
the SDK raises as ``TwilioServiceException``), ``latency`` delays every answer (for client
timeouts) and ``set_status`` moves a message on. The fake keeps what it received in memory for
assertions and logs nothing.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .server import json_response, read_body, reason, request_headers

#: Credentials the fake accepts unless told others.
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "fake-auth-token"  # noqa: S105 (a test credential)

API_VERSION = "2010-04-01"

_MESSAGE_SID = re.compile(r"(SM|MM)[0-9a-fA-F]{32}")
_MESSAGING_SERVICE_SID = re.compile(r"MG[0-9a-fA-F]{32}")
_ADDRESS = re.compile(r"(whatsapp:)?\+[1-9][0-9]{6,14}")
_ROUTE = re.compile(
    rf"/{API_VERSION}/Accounts/(?P<account>[^/]+)/Messages"
    r"(?:/(?P<sid>[^/]+?))?(?P<feedback>/Feedback)?\.json"
)

#: Default code and message of the failures ``fail_next`` plays, by HTTP status.
FAILURES: dict[int, tuple[int, str]] = {
    429: (20429, "Too Many Requests"),
    500: (20500, "Internal Server Error"),
    502: (20502, "Bad Gateway"),
    503: (20503, "Service Unavailable"),
}

#: ``problem_status`` default: the problem body's ``status`` is the HTTP status.
_HTTP_STATUS: Any = object()


class TwilioError(Exception):
    """An error answer: HTTP ``status`` with Twilio's ``code`` and ``message``."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        *,
        problem: bool = False,
        problem_status: Any = _HTTP_STATUS,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        #: Answer as RFC 9457 problem details (newer Twilio APIs; ``TwilioServiceException``).
        self.problem = problem
        #: The problem body's ``status`` member, when it should not match the HTTP status.
        self.problem_status = status if problem_status is _HTTP_STATUS else problem_status

    def payload(self) -> dict[str, Any]:
        more_info = f"https://www.twilio.com/docs/errors/{self.code}"
        if self.problem:
            return {
                "type": more_info,
                "title": reason(self.status),
                "status": self.problem_status,
                "code": self.code,
                "detail": self.message,
            }
        return {
            "code": self.code,
            "message": self.message,
            "more_info": more_info,
            "status": self.status,
        }


@dataclass
class FakeMessage:
    """One message the fake accepted (the fake keeps the body, as Twilio does)."""

    sid: str
    account_sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str | None
    media_urls: list[str]
    content_sid: str | None
    provide_feedback: bool
    status_callback: str | None
    validity_period: int | None
    status: str
    date_created: datetime
    date_updated: datetime
    error_code: int | None = None
    #: Every other form field, as received.
    extra: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it, for assertions on what went over the wire."""

    method: str
    path: str
    #: Form fields of a POST (each a list: Twilio takes repeated fields such as MediaUrl).
    form: dict[str, list[str]]
    #: Lower-case header names; the Authorization header is not kept.
    headers: dict[str, str]
    #: The Basic-auth user name (an Account SID or an API key SID), "" when there was none.
    username: str


class TwilioFake:
    """WSGI app faking Twilio's Messages and Message Feedback resources; see the module."""

    def __init__(
        self,
        *,
        account_sid: str = ACCOUNT_SID,
        auth_token: str = AUTH_TOKEN,
        api_keys: dict[str, str] | None = None,
        latency: float = 0.0,
    ) -> None:
        self.account_sid = account_sid
        #: Basic-auth user name -> password: the account's Auth Token and each API key's secret.
        self.credentials = {account_sid: auth_token, **(api_keys or {})}
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and state -------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, request, outcome and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer. The request is handled at once, so a client
            #: that times out leaves it done, as a response lost on the way back would.
            self.latency = latency
            #: Message SID -> message created.
            self.messages: dict[str, FakeMessage] = {}
            #: Message SID -> every feedback outcome posted for it, oldest first.
            self.feedback: dict[str, list[str]] = {}
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            self._failures: deque[TwilioError] = deque()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        code: int | None = None,
        message: str | None = None,
        problem: bool = False,
        problem_status: Any = _HTTP_STATUS,
    ) -> None:
        """Answer the next ``count`` requests with an error of HTTP ``status``.

        ``code`` and ``message`` default to Twilio's for that status (20429 for 429...);
        ``problem`` answers in the RFC 9457 shape instead of the classic one, whose ``status``
        member is ``problem_status`` when given (None, a string: what a broken body says).
        """
        default_code, default_message = FAILURES.get(status, (status, reason(status)))
        error = TwilioError(
            status,
            default_code if code is None else code,
            default_message if message is None else message,
            problem=problem,
            problem_status=problem_status,
        )
        with self._lock:
            self._failures.extend(error for _ in range(count))

    def set_status(self, sid: str, status: str, error_code: int | None = None) -> None:
        """Move a message on, as the carrier would (``sent``, ``delivered``, ``undelivered``...)."""
        with self._lock:
            message = self.messages[sid]
            message.status = status
            message.error_code = error_code
            message.date_updated = _now()

    def requests_to(self, method: str, suffix: str) -> list[FakeRequest]:
        """Requests received with ``method`` whose path ends with ``suffix`` ("/Feedback.json")."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read_request(environ)
        content_type = "application/json"
        with self._lock:
            self.requests.append(request)
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            try:
                if failure is not None:
                    raise failure
                self._authenticate(environ)
                status, payload = self._dispatch(request)
            except TwilioError as exc:
                status, payload = exc.status, exc.payload()
                if exc.problem:
                    content_type = "application/problem+json"
        if latency:
            time.sleep(latency)
        return json_response(start_response, status, payload, content_type=content_type)

    def _authenticate(self, environ: dict[str, Any]) -> None:
        username, password = _basic_auth(environ)
        expected = self.credentials.get(username)
        if expected is None or not secrets.compare_digest(password, expected):
            raise TwilioError(401, 20003, "Authenticate")

    def _dispatch(self, request: FakeRequest) -> tuple[int, dict[str, Any]]:
        match = _ROUTE.fullmatch(request.path)
        if match is None:
            raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
        if match["account"] != self.account_sid:
            # Twilio answers this way for an account the credentials do not give access to.
            raise TwilioError(401, 20003, "Authenticate")
        sid = match["sid"]
        if sid is None and not match["feedback"]:
            if request.method != "POST":
                raise TwilioError(405, 20004, "Method not allowed")
            return 201, self._create(request.form)
        if sid is None or not _MESSAGE_SID.fullmatch(sid) or sid not in self.messages:
            raise TwilioError(404, 20404, f"The requested resource {request.path} was not found")
        if match["feedback"]:
            if request.method != "POST":
                raise TwilioError(405, 20004, "Method not allowed")
            return 201, self._feedback(self.messages[sid], request.form)
        if request.method != "GET":
            raise TwilioError(405, 20004, "Method not allowed")
        return 200, _message_payload(self.messages[sid])

    def _create(self, form: dict[str, list[str]]) -> dict[str, Any]:
        values = {name: values[-1] for name, values in form.items()}
        to = values.get("To")
        if not to:
            raise TwilioError(400, 21604, "A 'To' phone number is required.")
        if not _ADDRESS.fullmatch(to):
            raise TwilioError(400, 21211, f"Invalid 'To' Phone Number: {to}")
        from_ = values.get("From")
        service = values.get("MessagingServiceSid")
        if not from_ and not service:
            raise TwilioError(400, 21603, "A 'From' phone number is required.")
        if service and not _MESSAGING_SERVICE_SID.fullmatch(service):
            raise TwilioError(400, 21701, f"The Messaging Service Sid {service} is invalid.")
        media_urls = form.get("MediaUrl", [])
        if not values.get("Body") and not media_urls and not values.get("ContentSid"):
            raise TwilioError(400, 21602, "Message body is required.")
        if len(values.get("Body", "")) > 1600:
            raise TwilioError(
                400, 21617, "The concatenated message body exceeds the 1600 character limit."
            )
        callback = values.get("StatusCallback")
        if callback is not None and not _valid_callback(callback):
            raise TwilioError(400, 21609, f"The StatusCallback URL {callback} is not valid.")
        validity = values.get("ValidityPeriod")
        if validity is not None and not (validity.isdigit() and 1 <= int(validity) <= 36000):
            raise TwilioError(
                400,
                21624,
                "Validity period can only be set to integers between 1 and 36,000 seconds.",
            )
        now = _now()
        known = {"To", "From", "MessagingServiceSid", "Body", "MediaUrl", "ContentSid"}
        message = FakeMessage(
            sid=("MM" if media_urls else "SM") + secrets.token_hex(16),
            account_sid=self.account_sid,
            to=to,
            from_=from_,
            messaging_service_sid=service,
            body=values.get("Body"),
            media_urls=media_urls,
            content_sid=values.get("ContentSid"),
            provide_feedback=values.get("ProvideFeedback", "").lower() == "true",
            status_callback=callback,
            validity_period=int(validity) if validity is not None else None,
            # A Messaging Service takes the message in first; without one it is queued at once.
            status="accepted" if service else "queued",
            date_created=now,
            date_updated=now,
            extra={name: value for name, value in form.items() if name not in known},
        )
        self.messages[message.sid] = message
        return _message_payload(message)

    def _feedback(self, message: FakeMessage, form: dict[str, list[str]]) -> dict[str, Any]:
        # What Twilio answers for a message created without ProvideFeedback is not documented;
        # the fake accepts it (tests can look at ``message.provide_feedback``).
        outcome = form.get("Outcome", [""])[-1]
        if outcome not in ("confirmed", "unconfirmed"):
            # No documented code for this answer: the fake uses 20001 for it.
            raise TwilioError(
                400, 20001, f"Outcome must be confirmed or unconfirmed, not {outcome!r}"
            )
        self.feedback.setdefault(message.sid, []).append(outcome)
        now = _rfc2822(_now())
        return {
            "account_sid": message.account_sid,
            "message_sid": message.sid,
            "outcome": outcome,
            "date_created": now,
            "date_updated": now,
            "uri": f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/"
            f"{message.sid}/Feedback.json",
        }


def _now() -> datetime:
    # Twilio's dates have whole seconds.
    return datetime.now(UTC).replace(microsecond=0)


def _rfc2822(value: datetime) -> str:
    return format_datetime(value, usegmt=True)


def _valid_callback(url: str) -> bool:
    """Twilio's rule: a fully qualified http(s) URL whose host has no underscore."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and "_" not in host and len(url) <= 4000


def _message_payload(message: FakeMessage) -> dict[str, Any]:
    uri = f"/{API_VERSION}/Accounts/{message.account_sid}/Messages/{message.sid}"
    return {
        "account_sid": message.account_sid,
        "api_version": API_VERSION,
        "body": message.body,
        "date_created": _rfc2822(message.date_created),
        "date_sent": None,
        "date_updated": _rfc2822(message.date_updated),
        "direction": "outbound-api",
        "error_code": message.error_code,
        "error_message": None,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "num_media": str(len(message.media_urls)),
        "num_segments": "0" if message.messaging_service_sid else "1",
        "price": None,
        "price_unit": "USD",
        "sid": message.sid,
        "status": message.status,
        "subresource_uris": {
            "media": f"{uri}/Media.json",
            "feedback": f"{uri}/Feedback.json",
        },
        "to": message.to,
        "uri": f"{uri}.json",
    }


def _read_request(environ: dict[str, Any]) -> FakeRequest:
    raw = read_body(environ)
    headers = request_headers(environ)
    return FakeRequest(
        method=environ["REQUEST_METHOD"],
        path=environ.get("PATH_INFO", ""),
        form=parse_qs(raw.decode(), keep_blank_values=True),
        headers=headers,
        username=_basic_auth(environ)[0],
    )


def _basic_auth(environ: dict[str, Any]) -> tuple[str, str]:
    """(user name, password) of a Basic Authorization header; empty strings without one."""
    scheme, _, encoded = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        username, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return "", ""
    return username, password
