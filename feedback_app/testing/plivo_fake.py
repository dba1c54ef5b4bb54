"""A local fake of the Plivo Message API calls this app makes, for the real plivo client.

``PlivoFake`` is a WSGI app serving (under any mount prefix, e.g. ``/plivo``):

- ``POST /v1/Account/{auth_id}/Message/``: send (JSON, as Plivo validates it), answering
  ``202 {"api_id", "message": "message(s) queued", "message_uuid": [...]}``;
- ``GET /v1/Account/{auth_id}/Message/{message_uuid}/``: the message record (``message_state``);
- ``POST /v1/account/{auth_id}/message/{message_uuid}/conversion/``: Conversion Feedback, JSON
  ``{"status", "timestamp"}``, at the lower-case path Plivo documents.

Requests need HTTP Basic auth ``auth_id:auth_token``; errors are Plivo's shape ``{"api_id",
"error"}`` with the HTTP status, which the SDK raises as its ``plivo.exceptions`` classes.
Example, in a host project's test::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.plivo_fake import AUTH_ID, AUTH_TOKEN, PlivoFake

    fake = PlivoFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"plivo": {"AUTH_ID": AUTH_ID, "AUTH_TOKEN": AUTH_TOKEN,
                                "SRC": "14155550100", "BASE_URL": server.url}},
    }):
        message = feedback_app.send(provider="plivo", to="+14155550123", body="Code: 482913")
        fake.messages[message.provider_message_id].trackable  # True
        feedback_app.confirm(message)  # after commit, the outbox posts the conversion
        fake.conversions  # [Conversion(message_uuid=..., status="CONVERTED", ...)]

``fail_next`` makes the next requests fail (429, 5xx, 4xx), ``latency`` delays every answer (for
client timeouts), ``set_status`` moves a message on, and ``callback_params``/``signed_headers``
build a status callback as Plivo signs it. ``CarrierPlivoFake`` posts those callbacks by itself,
for the demo. The fake keeps what it received in memory for assertions and logs nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .carrier import call_later, post, unreachable
from .server import json_response, read_body, reason, request_headers

#: Credentials the fake accepts unless told others (an Auth ID of the form the SDK checks).
AUTH_ID = "MADEMO0000000000FAKE"
AUTH_TOKEN = "fake-plivo-auth-token"  # noqa: S105 (a test credential)

#: Conversion ``status`` values Plivo documents.
CONVERSION_STATUSES = ("CONVERTED", "NOT_CONVERTED", "CONVERTED_WITH_OTHERS")

_PREFIX = r"(?:/[^/]+)*?"
_MESSAGE_ROUTE = re.compile(
    _PREFIX + r"/v1/Account/(?P<auth_id>[^/]+)/Message/(?:(?P<uuid>[^/]+)/)?"
)
_CONVERSION_ROUTE = re.compile(
    _PREFIX + r"/v1/account/(?P<auth_id>[^/]+)/message/(?P<uuid>[^/]+)/conversion/"
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
#: Plivo strips these from ``src`` and ``dst`` before checking them.
_SANITIZED = re.compile(r"[/\-.+()\s]")
#: ``timestamp`` of a conversion: RFC 3339, as the docs' example ``2020-08-01T11:32:26Z``.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})")


class PlivoError(Exception):
    """An error answer: HTTP ``status`` with Plivo's ``error`` text."""

    def __init__(self, status: int, error: str) -> None:
        super().__init__(error)
        self.status = status
        self.error = error


@dataclass
class FakeMessage:
    """One message the fake accepted (the fake keeps the text, as Plivo does with ``log``)."""

    message_uuid: str
    auth_id: str
    src: str | None
    powerpack_uuid: str | None
    dst: str
    text: str
    type: str
    trackable: bool
    url: str | None
    method: str
    log: str
    status: str
    created: datetime
    error_code: str | None = None
    #: Every other field of the request, as received.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Conversion:
    """One Conversion Feedback call the fake accepted."""

    message_uuid: str
    status: str
    timestamp: str


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it, for assertions on what went over the wire."""

    method: str
    path: str
    #: The JSON body (None without one or when it was not JSON).
    json: Any
    query: dict[str, list[str]]
    #: Lower-case header names; the Authorization header is not kept.
    headers: dict[str, str]
    #: The Basic-auth user name (an Auth ID), "" when there was none.
    username: str


class PlivoFake:
    """WSGI app faking Plivo's Message and Conversion Feedback resources; see the module."""

    def __init__(
        self, *, auth_id: str = AUTH_ID, auth_token: str = AUTH_TOKEN, latency: float = 0.0
    ) -> None:
        self.auth_id = auth_id
        self.auth_token = auth_token
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and state -------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, request, conversion and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer. The request is handled at once, so a client
            #: that times out leaves it done, as a response lost on the way back would.
            self.latency = latency
            #: Message UUID -> message sent.
            self.messages: dict[str, FakeMessage] = {}
            #: Every conversion reported, oldest first.
            self.conversions: list[Conversion] = []
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            self._failures: deque[PlivoError] = deque()

    def fail_next(self, count: int = 1, *, status: int = 503, message: str | None = None) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` and ``message`` as ``error``."""
        error = PlivoError(status, message or reason(status).lower())
        with self._lock:
            self._failures.extend(error for _ in range(count))

    def set_status(self, message_uuid: str, status: str, error_code: str | None = None) -> None:
        """Move a message on, as the carrier would (``sent``, ``delivered``, ``undelivered``...)."""
        with self._lock:
            message = self.messages[message_uuid]
            message.status = status
            message.error_code = error_code

    # -- status callbacks, as Plivo posts them ---------------------------------------------------

    def callback_params(self, message_uuid: str, status: str) -> dict[str, str]:
        """The form fields of the status callback for ``message_uuid`` at ``status``."""
        message = self.messages[message_uuid]
        params = {
            "MessageUUID": message.message_uuid,
            "Status": status,
            "From": message.src or "",
            "To": message.dst,
            "Type": message.type,
            "Units": "1",
            "TotalRate": "0.00500",
            "TotalAmount": "0.00500",
            "MCC": "310",
            "MNC": "004",
            "ParentMessageUUID": message.message_uuid,
            "PartInfo": "1 of 1",
            "PowerpackUUID": message.powerpack_uuid or "",
            "MessageTime": _plivo_time(message.created),
        }
        if status in ("failed", "undelivered") and message.error_code:
            # Plivo defines ErrorCode for failed and undelivered messages only.
            params["ErrorCode"] = message.error_code
        return params

    def signed_headers(
        self,
        url: str,
        params: dict[str, str],
        *,
        auth_token: str | None = None,
        signatures: Iterable[str] = ("v3", "v2"),
    ) -> dict[str, str]:
        """The signature headers of a POST of ``params`` to ``url`` (``auth_token``: sign with
        another token, as a forger would)."""
        token = self.auth_token if auth_token is None else auth_token
        headers: dict[str, str] = {}
        if "v3" in signatures:
            nonce = secrets.token_hex(10)
            headers["X-Plivo-Signature-V3"] = sign_v3(token, url, params, nonce)
            headers["X-Plivo-Signature-V3-Nonce"] = nonce
        if "v2" in signatures:
            nonce = str(secrets.randbelow(10**20)).zfill(20)
            headers["X-Plivo-Signature-V2"] = sign_v2(token, url, nonce)
            headers["X-Plivo-Signature-V2-Nonce"] = nonce
        return headers

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read_request(environ)
        with self._lock:
            self.requests.append(request)
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            try:
                if failure is not None:
                    raise failure
                status, payload = self._dispatch(environ, request)
            except PlivoError as exc:
                status, payload = exc.status, {"api_id": _api_id(), "error": exc.error}
        if latency:
            time.sleep(latency)
        return json_response(start_response, status, payload)

    def _authenticate(self, environ: dict[str, Any], auth_id: str) -> None:
        username, password = _basic_auth(environ)
        if username != self.auth_id or not secrets.compare_digest(password, self.auth_token):
            raise PlivoError(401, "Authentication credentials invalid")
        if auth_id != self.auth_id:
            # The credentials give no access to another account's resources.
            raise PlivoError(401, "Authentication credentials invalid")

    def _dispatch(self, environ: dict[str, Any], request: FakeRequest) -> tuple[int, Any]:
        conversion = _CONVERSION_ROUTE.fullmatch(request.path)
        route = conversion or _MESSAGE_ROUTE.fullmatch(request.path)
        if route is None:
            raise PlivoError(404, "not found")
        self._authenticate(environ, route["auth_id"])
        message_uuid = route["uuid"]
        if message_uuid is not None and message_uuid not in self.messages:
            raise PlivoError(404, "not found")
        if conversion is not None:
            if request.method != "POST":
                raise PlivoError(405, "method not allowed")
            return 200, self._conversion(message_uuid, request)
        if message_uuid is None:
            if request.method != "POST":
                raise PlivoError(405, "method not allowed")
            return 202, self._create(request)
        if request.method != "GET":
            raise PlivoError(405, "method not allowed")
        return 200, _message_payload(self.messages[message_uuid])

    def _create(self, request: FakeRequest) -> dict[str, Any]:
        data = _json_object(request)
        src, powerpack = data.get("src"), data.get("powerpack_uuid")
        if not src and not powerpack:
            raise PlivoError(400, "Specify either powerpack_uuid or src in request params")
        if src and powerpack:
            raise PlivoError(400, "Both powerpack_uuid and src cannot be specified")
        if powerpack and not (isinstance(powerpack, str) and _UUID.fullmatch(powerpack)):
            raise PlivoError(400, f"invalid powerpack_uuid {powerpack}")
        if src is not None:
            src = _SANITIZED.sub("", str(src))
            if not (src.isdigit() and len(src) <= 14) and not (src.isalnum() and len(src) <= 11):
                raise PlivoError(400, f"invalid src {src}")
        dst = data.get("dst")
        if not dst or not isinstance(dst, str):
            raise PlivoError(400, "dst parameter not present")
        destinations = [_SANITIZED.sub("", part) for part in dst.split("<")]
        for number in destinations:
            if not (number.isdigit() and 7 <= len(number) <= 14):
                raise PlivoError(400, f"invalid dst parameter {number}")
            if number == src:
                raise PlivoError(400, "destination number cannot be same as source number")
        text = data.get("text")
        if not text or not isinstance(text, str):
            raise PlivoError(400, "text parameter not present")
        if len(text) > 1600:
            raise PlivoError(400, "text exceeds the 1600 character limit")
        message_type = data.get("type", "sms")
        if message_type not in ("sms", "mms", "whatsapp"):
            raise PlivoError(400, f"invalid type {message_type}")
        url = data.get("url")
        if url is not None and not _valid_url(url):
            raise PlivoError(400, f"invalid url {url}")
        method = str(data.get("method", "POST")).upper()
        if method not in ("GET", "POST"):
            raise PlivoError(400, "method should be GET or POST")
        trackable = data.get("trackable", False)
        if not isinstance(trackable, bool):
            raise PlivoError(400, "trackable should be true or false")
        known = {"src", "powerpack_uuid", "dst", "text", "type", "url", "method", "trackable"}
        uuids = []
        for number in destinations:
            message = FakeMessage(
                message_uuid=str(uuid.uuid4()),
                auth_id=self.auth_id,
                src=src,
                powerpack_uuid=powerpack,
                dst=number,
                text=text,
                type=message_type,
                trackable=trackable,
                url=url,
                method=method,
                log=str(data.get("log", "true")),
                status="queued",
                created=datetime.now(UTC),
                extra={name: value for name, value in data.items() if name not in known},
            )
            self.messages[message.message_uuid] = message
            uuids.append(message.message_uuid)
            self._created(message)
        return {"api_id": _api_id(), "message": "message(s) queued", "message_uuid": uuids}

    def _created(self, message: FakeMessage) -> None:
        """Called (under the lock) for each message accepted; the carrier fake moves it on."""

    def _conversion(self, message_uuid: str, request: FakeRequest) -> dict[str, Any]:
        if not request.headers.get("content-type", "").startswith("application/json"):
            # "The API only accepts input of the type application/json."
            raise PlivoError(400, "Content-Type must be application/json")
        data = _json_object(request)
        status = data.get("status")
        if status not in CONVERSION_STATUSES:
            raise PlivoError(400, f"status should be one of {', '.join(CONVERSION_STATUSES)}")
        timestamp = data.get("timestamp")
        if not isinstance(timestamp, str) or not _TIMESTAMP.fullmatch(timestamp):
            raise PlivoError(400, "timestamp is mandatory, in RFC 3339 format")
        self.conversions.append(Conversion(message_uuid, status, timestamp))
        return {"api_id": _api_id(), "message": "conversion feedback recorded"}


class CarrierPlivoFake(PlivoFake):
    """A ``PlivoFake`` whose messages move on by themselves and call back, signed.

    A message is ``sent`` after ``delays[0]`` seconds, then ``delivered`` or ``undelivered``
    (``ErrorCode`` ``undelivered_error_code``) after ``delays[1]``, each posted to the ``url``
    it was sent with, signed with both V3 and V2 headers (``signatures``). About
    ``undelivered_rate`` of the numbers are unreachable: which ones is fixed (``unreachable``),
    as a phone that is off, so a number always ends the same way.
    """

    def __init__(
        self,
        *,
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        undelivered_error_code: str = "20",
        signatures: tuple[str, ...] = ("v3", "v2"),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delays = delays
        self.undelivered_rate = undelivered_rate
        #: 20, "Network Error" in Plivo's table: the carrier could not reach the handset.
        self.undelivered_error_code = undelivered_error_code
        self.signatures = signatures

    def _created(self, message: FakeMessage) -> None:
        if not message.url or message.method != "POST":
            return  # no callback asked for (a GET callback is not played)
        final = (
            "undelivered" if unreachable(f"+{message.dst}", self.undelivered_rate) else "delivered"
        )
        for delay, status in zip(self.delays, ("sent", final), strict=True):
            call_later(delay, self._call_back, message.message_uuid, message.url, status)

    def _call_back(self, message_uuid: str, url: str, status: str) -> None:
        error_code = self.undelivered_error_code if status == "undelivered" else None
        try:
            self.set_status(message_uuid, status, error_code)
            params = self.callback_params(message_uuid, status)
        except KeyError:
            return  # the fake was reset meanwhile
        headers = self.signed_headers(url, params, signatures=self.signatures)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        post(url, urlencode(params).encode(), headers)


def sign_v3(auth_token: str, url: str, params: dict[str, Any], nonce: str) -> str:
    """``X-Plivo-Signature-V3`` of a POST: base64 HMAC-SHA256, keyed with the Auth Token, of the
    URL (its query sorted), the sorted parameters as ``name`` + ``value``, a dot and the nonce."""
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}"
    query = "&".join(
        f"{name}={value}"
        for name, values in sorted(parse_qs(parts.query, keep_blank_values=True).items())
        for value in sorted(values)
    )
    if query or params:
        base += "?" + query
    if query and params:
        base += "."
    for name in sorted(params):
        values = params[name] if isinstance(params[name], list) else [params[name]]
        base += "".join(f"{name}{value}" for value in sorted(values))
    return _hmac(auth_token, f"{base}.{nonce}")


def sign_v2(auth_token: str, url: str, nonce: str) -> str:
    """``X-Plivo-Signature-V2``: base64 HMAC-SHA256 of the URL without its query + the nonce."""
    parts = urlsplit(url)
    return _hmac(auth_token, f"{parts.scheme}://{parts.netloc}{parts.path}{nonce}")


def _hmac(key: str, message: str) -> str:
    digest = hmac.new(key.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _api_id() -> str:
    return str(uuid.uuid4())


def _plivo_time(value: datetime) -> str:
    # "YYYY-mm-dd HH:MM:SS.SSSSSS", as the callbacks' MessageTime.
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _valid_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _json_object(request: FakeRequest) -> dict[str, Any]:
    if not isinstance(request.json, dict):
        raise PlivoError(400, "the request body must be a JSON object")
    return request.json


def _message_payload(message: FakeMessage) -> dict[str, Any]:
    return {
        "api_id": _api_id(),
        "message_uuid": message.message_uuid,
        "message_state": message.status,
        "message_direction": "outbound",
        "message_type": message.type,
        "from_number": message.src or "",
        "to_number": message.dst,
        "error_code": message.error_code or "000",
        "message_time": message.created.strftime("%Y-%m-%d %H:%M:%S+00:00"),
        "units": 1,
        "total_rate": "0.00500",
        "total_amount": "0.00500",
        "powerpack_id": message.powerpack_uuid,
        "resource_uri": f"/v1/Account/{message.auth_id}/Message/{message.message_uuid}/",
    }


def _read_request(environ: dict[str, Any]) -> FakeRequest:
    raw = read_body(environ)
    headers = request_headers(environ)
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = None
    return FakeRequest(
        method=environ["REQUEST_METHOD"],
        path=environ.get("PATH_INFO", ""),
        json=body,
        query=parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True),
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
