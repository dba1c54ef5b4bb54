"""A local fake of the Infobip SMS API calls this app makes, for the real infobip SDK.

``InfobipFake`` is a WSGI app serving, under ``base_path`` (the path of the ``BASE_URL`` the SDK
is given, e.g. ``/infobip`` when the demo serves every fake on one port):

- ``POST /sms/3/messages``: send (the v3 request: ``messages[].destinations[].to/messageId``,
  ``content.text``, ``webhooks``; ``options.conversionTracking``);
- ``POST /ct/1/log/end/{messageId}``: confirm a conversion, answers ``{"processKey"}``;
- ``GET /sms/3/logs?messageId=...``: the message logs.

Requests need ``Authorization: App <API key>``. Errors are Infobip's two shapes: the v3 one
``{"errorCode": "E400", "description", "action", "violations", "resources"}`` on ``/sms/3``, the
older ``{"requestError": {"serviceException": {"messageId", "text"}}}`` on ``/ct/1``. Example::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.infobip_fake import API_KEY, InfobipFake

    fake = InfobipFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"infobip": {"API_KEY": API_KEY, "BASE_URL": server.url,
                                  "WEBHOOK_BASIC_AUTH": "infobip:s3cret"}},
    }):
        message = feedback_app.send(provider="infobip", to="+14155550123", body="Code: 482913")
        fake.messages[message.provider_message_id].tracking  # True
        feedback_app.confirm(message)  # after commit, the outbox logs the conversion
        fake.conversions  # [FakeConversion(message_id=..., process_key=...)]

``fail_next`` makes the next requests fail, ``latency`` delays every answer (for client
timeouts), ``set_status`` moves a message on and ``receipt`` builds the delivery report Infobip
would post. ``CarrierInfobipFake`` (below) posts those reports itself, for the live demo. The
fake keeps what it received in memory for assertions and logs nothing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .carrier import call_later, post, unreachable
from .server import json_response, read_body, reason, request_headers

#: The API key the fake accepts unless told another.
API_KEY = "fake-infobip-api-key"

#: Status name -> (groupId, groupName, id, description), as Infobip's status objects have them.
STATUSES: dict[str, tuple[int, str, int, str]] = {
    "PENDING_ACCEPTED": (1, "PENDING", 26, "Message sent to next instance"),
    "PENDING_ENROUTE": (1, "PENDING", 7, "Message sent to next instance"),
    "PENDING_WAITING_DELIVERY": (1, "PENDING", 3, "Message sent, waiting for delivery report"),
    "UNDELIVERABLE_REJECTED_OPERATOR": (2, "UNDELIVERABLE", 4, "Message rejected by operator"),
    "UNDELIVERABLE_NOT_DELIVERED": (2, "UNDELIVERABLE", 9, "Message sent not delivered"),
    "DELIVERED_TO_OPERATOR": (3, "DELIVERED", 2, "Message delivered to operator"),
    "DELIVERED_TO_HANDSET": (3, "DELIVERED", 5, "Message delivered to handset"),
    "EXPIRED_EXPIRED": (4, "EXPIRED", 15, "Message expired"),
    "EXPIRED_DLR_UNKNOWN": (4, "EXPIRED", 29, "Unable to determine delivery status"),
    "REJECTED_NETWORK": (5, "REJECTED", 6, "Network is forbidden"),
    "REJECTED_DESTINATION": (5, "REJECTED", 14, "Destination address is forbidden"),
}

#: The error object of a report without an error.
NO_ERROR: dict[str, Any] = {
    "groupId": 0,
    "groupName": "OK",
    "id": 0,
    "name": "NO_ERROR",
    "description": "No Error",
    "permanent": False,
}

#: The error of an unreachable handset (the carrier fake's undelivered messages).
UNKNOWN_SUBSCRIBER: dict[str, Any] = {
    "groupId": 1,
    "groupName": "HANDSET_ERRORS",
    "id": 1,
    "name": "EC_UNKNOWN_SUBSCRIBER",
    "description": "Unknown Subscriber",
    "permanent": True,
}

_DESTINATION = re.compile(r"\+?[1-9][0-9]{5,14}")
_CONVERSION = re.compile(r"/ct/1/log/end/(?P<message_id>[^/]+)")


#: The older shape's ``messageId`` for an HTTP status (BAD_REQUEST is in Infobip's API spec;
#: the others follow its naming).
_LEGACY_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "TOO_MANY_REQUESTS",
}


class InfobipError(Exception):
    """An error answer: HTTP ``status`` with Infobip's ``code`` and ``text``; ``legacy`` picks
    the older ``requestError`` shape."""

    def __init__(self, status: int, code: str, text: str, *, legacy: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text
        self.legacy = legacy
        self.violations: list[dict[str, str]] = []

    def payload(self) -> dict[str, Any]:
        if self.legacy:
            exception = {"messageId": self.code, "text": self.text}
            return {"requestError": {"serviceException": exception}}
        return {
            "errorCode": self.code,
            "description": self.text,
            "action": "Check the syntax, violations and adjust the request.",
            "violations": self.violations,
            "resources": [],
        }


def _error(status: int, text: str, *, legacy: bool, code: str | None = None) -> InfobipError:
    default = _LEGACY_CODES.get(status, "GENERAL_ERROR") if legacy else f"E{status}"
    return InfobipError(status, code or default, text, legacy=legacy)


def _violation(prop: str, violation: str) -> InfobipError:
    error = _error(400, "Request cannot be processed.", legacy=False)
    error.violations = [{"property": prop, "violation": violation}]
    return error


@dataclass
class FakeMessage:
    """One message the fake accepted (it keeps the text and number, as Infobip does)."""

    message_id: str
    bulk_id: str
    to: str
    sender: str | None
    text: str
    #: ``options.conversionTracking.useConversionTracking`` of its request.
    tracking: bool
    tracking_name: str | None
    delivery_url: str | None
    callback_data: str | None
    status: str
    sent_at: datetime
    done_at: datetime | None = None
    error: dict[str, Any] = field(default_factory=lambda: dict(NO_ERROR))
    #: The message's ``options`` and ``webhooks`` as received.
    options: dict[str, Any] = field(default_factory=dict)
    webhooks: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeConversion:
    """One "Confirm conversion" the fake accepted."""

    message_id: str
    process_key: str


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it, for assertions on what went over the wire."""

    method: str
    #: The path under ``base_path`` (``/sms/3/messages``).
    path: str
    query: dict[str, list[str]]
    #: The JSON body, None without one.
    json: Any
    #: Lower-case header names; the Authorization header is not kept.
    headers: dict[str, str]
    #: The Authorization scheme (``App``), "" without one.
    auth_scheme: str


class InfobipFake:
    """WSGI app faking Infobip's SMS send, conversion and logs endpoints; see the module."""

    def __init__(self, *, api_key: str = API_KEY, base_path: str = "", latency: float = 0.0):
        self.api_key = api_key
        #: The path every route is under: a BASE_URL of http://host:port/infobip has /infobip.
        self.base_path = base_path.rstrip("/")
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and state -------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, request, conversion and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer. The request is handled at once, so a client
            #: that times out leaves it done, as an answer lost on the way back would.
            self.latency = latency
            #: messageId -> message sent.
            self.messages: dict[str, FakeMessage] = {}
            #: Every conversion confirmed, oldest first.
            self.conversions: list[FakeConversion] = []
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            self._failures: deque[tuple[int, str | None, str | None, bool | None]] = deque()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        code: str | None = None,
        message: str | None = None,
        legacy: bool | None = None,
    ) -> None:
        """Answer the next ``count`` requests with an error of HTTP ``status``.

        ``code`` defaults to ``E<status>`` (v3) or the older shape's name (``TOO_MANY_REQUESTS``);
        ``legacy`` forces a shape, else each endpoint answers in its own.
        """
        with self._lock:
            self._failures.extend((status, code, message, legacy) for _ in range(count))

    def set_status(
        self, message_id: str, status: str, error: dict[str, Any] | None = None
    ) -> FakeMessage:
        """Move a message on, as the operator would (``DELIVERED_TO_HANDSET``...)."""
        if status not in STATUSES:
            raise ValueError(f"unknown Infobip status {status!r}")
        with self._lock:
            message = self.messages[message_id]
            message.status = status
            message.error = dict(error or NO_ERROR)
            if STATUSES[status][1] != "PENDING":
                message.done_at = _now()
            return message

    def receipt(
        self, message_id: str, status: str, error: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The delivery report body Infobip posts for ``message_id`` reaching ``status``."""
        group_id, group_name, status_id, description = STATUSES[status]
        with self._lock:
            message = self.messages[message_id]
            report = {
                "bulkId": message.bulk_id,
                "price": {"pricePerMessage": 0.01, "currency": "EUR"},
                "status": {
                    "groupId": group_id,
                    "groupName": group_name,
                    "id": status_id,
                    "name": status,
                    "description": description,
                },
                "error": dict(error or NO_ERROR),
                "messageId": message.message_id,
                "to": message.to,
                "sender": message.sender,
                "sentAt": _iso(message.sent_at),
                "doneAt": _iso(_now()),
                "messageCount": 1,
                "mccMnc": "22801",
            }
            if message.callback_data is not None:
                report["callbackData"] = message.callback_data
        return {"results": [report]}

    def requests_to(self, method: str, suffix: str) -> list[FakeRequest]:
        """Requests received with ``method`` whose path ends with ``suffix``."""
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path.endswith(suffix)]

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read_request(environ, self.base_path)
        with self._lock:
            self.requests.append(request)
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            legacy = request.path.startswith("/ct/")
            try:
                if request.path.startswith(".."):  # not under base_path
                    raise _error(404, "Not found", legacy=legacy)
                if failure is not None:
                    status, code, text, forced = failure
                    raise _error(
                        status,
                        text or reason(status),
                        legacy=legacy if forced is None else forced,
                        code=code,
                    )
                self._authenticate(environ, legacy)
                status, payload = self._dispatch(request)
            except InfobipError as exc:
                status, payload = exc.status, exc.payload()
        if latency:
            time.sleep(latency)
        return json_response(start_response, status, payload)

    def _authenticate(self, environ: dict[str, Any], legacy: bool) -> None:
        scheme, _, key = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme != "App" or not secrets.compare_digest(key.strip(), self.api_key):
            raise _error(401, "Invalid login details", legacy=legacy)

    def _dispatch(self, request: FakeRequest) -> tuple[int, dict[str, Any]]:
        path = request.path
        if path == "/sms/3/messages":
            if request.method != "POST":
                raise _error(405, "Method not allowed", legacy=False)
            return 200, self._send(request.json)
        if path == "/sms/3/logs":
            if request.method != "GET":
                raise _error(405, "Method not allowed", legacy=False)
            return 200, self._logs(request.query)
        match = _CONVERSION.fullmatch(path)
        if match:
            if request.method != "POST":
                raise _error(405, "Method not allowed", legacy=True)
            return 200, self._convert(match["message_id"])
        raise _error(404, f"Resource {path} not found", legacy=path.startswith("/ct/"))

    def _send(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _violation("", "request body must be a JSON object")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _violation("messages", "must not be empty")
        options = body.get("options") or {}
        tracking = options.get("conversionTracking") or {}
        bulk_id = secrets.token_hex(10)
        now = _now()
        accepted: list[FakeMessage] = []
        for index, message in enumerate(messages):
            where = f"messages[{index}]"
            content = message.get("content") if isinstance(message, dict) else None
            if not isinstance(content, dict) or not content.get("text"):
                raise _violation(f"{where}.content.text", "must not be blank")
            destinations = message.get("destinations")
            if not isinstance(destinations, list) or not destinations:
                raise _violation(f"{where}.destinations", "must not be empty")
            webhooks = message.get("webhooks") or {}
            url = (webhooks.get("delivery") or {}).get("url")
            if url is not None and not _valid_url(url):
                raise _violation(f"{where}.webhooks.delivery.url", "must be a valid URL")
            for position, destination in enumerate(destinations):
                to = destination.get("to") if isinstance(destination, dict) else None
                if not isinstance(to, str) or not _DESTINATION.fullmatch(to):
                    raise _violation(
                        f"{where}.destinations[{position}].to", f"invalid destination {to!r}"
                    )
                message_id = destination.get("messageId") or secrets.token_hex(16)
                accepted.append(
                    FakeMessage(
                        message_id=message_id,
                        bulk_id=bulk_id,
                        to=to,
                        sender=message.get("sender"),
                        text=content["text"],
                        tracking=tracking.get("useConversionTracking") is True,
                        tracking_name=tracking.get("conversionTrackingName"),
                        delivery_url=url,
                        callback_data=webhooks.get("callbackData"),
                        status="PENDING_ACCEPTED",
                        sent_at=now,
                        options=dict(message.get("options") or {}),
                        webhooks=dict(webhooks),
                    )
                )
        for message in accepted:
            self.messages[message.message_id] = message
        return {
            "bulkId": bulk_id,
            "messages": [
                {
                    "messageId": message.message_id,
                    "status": _status(message.status),
                    "destination": message.to,
                    "details": {"messageCount": 1},
                }
                for message in accepted
            ],
        }

    def _convert(self, message_id: str) -> dict[str, Any]:
        # What Infobip answers for an id it does not know is not documented; the fake says 404.
        if message_id not in self.messages:
            raise _error(404, f"Message {message_id} not found", legacy=True)
        conversion = FakeConversion(message_id=message_id, process_key=secrets.token_hex(12))
        self.conversions.append(conversion)
        return {"processKey": conversion.process_key}

    def _logs(self, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = {part for value in query.get("messageId", []) for part in value.split(",")}
        results = []
        for message in self.messages.values():
            if wanted and message.message_id not in wanted:
                continue
            log = {
                "sender": message.sender,
                "destination": message.to,
                "bulkId": message.bulk_id,
                "messageId": message.message_id,
                "sentAt": _iso(message.sent_at),
                "messageCount": 1,
                "status": _status(message.status),
                "error": message.error,
            }
            if message.done_at is not None:
                log["doneAt"] = _iso(message.done_at)
            results.append(log)
        return {"results": results}


def _status(name: str) -> dict[str, Any]:
    group_id, group_name, status_id, description = STATUSES[name]
    return {
        "groupId": group_id,
        "groupName": group_name,
        "id": status_id,
        "name": name,
        "description": description,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    # Infobip's format: 2019-11-09T16:00:00.000+0000
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}+0000"


def _valid_url(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _read_request(environ: dict[str, Any], base_path: str) -> FakeRequest:
    raw = read_body(environ)
    headers = request_headers(environ)
    path = environ.get("PATH_INFO", "")
    if base_path:
        # Outside base_path nothing is served: ".." marks it for a 404.
        path = path[len(base_path) :] if path.startswith(base_path + "/") else ".." + path
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    return FakeRequest(
        method=environ["REQUEST_METHOD"],
        path=path,
        query=parse_qs(environ.get("QUERY_STRING", "")),
        json=body,
        headers=headers,
        auth_scheme=environ.get("HTTP_AUTHORIZATION", "").partition(" ")[0],
    )


# -- the carrier, for the live demo -----------------------------------------------------------


@dataclass(frozen=True)
class ReportTarget:
    """Where delivery reports go when a message named no URL (an account subscription), and the
    basic auth credentials of the subscription's security settings ("user:password")."""

    url: str | None
    basic_auth: str | None


def report_target_from_settings(provider: str = "infobip") -> ReportTarget:
    """The ``provider``'s webhook as the Django settings describe it: ``PUBLIC_URL`` + its
    webhook path, and its ``WEBHOOK_BASIC_AUTH``."""
    from ..conf import app_settings
    from ..providers.base import webhook_url

    config = app_settings.PROVIDERS.get(provider) or {}
    return ReportTarget(
        url=webhook_url("infobip", provider), basic_auth=config.get("WEBHOOK_BASIC_AUTH")
    )


class CarrierInfobipFake(InfobipFake):
    """An ``InfobipFake`` whose messages move on by themselves and are reported, with basic auth.

    A message is ``PENDING_ENROUTE`` after ``delays[0]`` seconds (seen in its log; Infobip
    posts no intermediate report unless asked), then ``DELIVERED_TO_HANDSET`` or, for about
    ``undelivered_rate`` of the numbers (always the same ones, ``carrier.unreachable``),
    ``UNDELIVERABLE_NOT_DELIVERED`` with ``EC_UNKNOWN_SUBSCRIBER`` after ``delays[1]``: that
    report is posted to the message's ``webhooks.delivery.url``, else to ``target()``'s URL
    (a subscription's), with ``target()``'s basic auth, as the notification profile's
    security settings make Infobip send it.
    """

    def __init__(
        self,
        *,
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        target: Callable[[], ReportTarget] = report_target_from_settings,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delays = delays
        self.undelivered_rate = undelivered_rate
        self.target = target
        #: HTTP status of each report posted (None: it could not be posted), oldest first.
        self.answers: list[int | None] = []

    def _send(self, body: Any) -> dict[str, Any]:
        answer = super()._send(body)
        for sent in answer["messages"]:
            message_id = sent["messageId"]
            number = "+" + sent["destination"].lstrip("+")
            if unreachable(number, self.undelivered_rate):
                final, error = "UNDELIVERABLE_NOT_DELIVERED", UNKNOWN_SUBSCRIBER
            else:
                final, error = "DELIVERED_TO_HANDSET", None
            call_later(self.delays[0], self._move, message_id, "PENDING_ENROUTE")
            call_later(self.delays[1], self._report, message_id, final, error)
        return answer

    def _move(self, message_id: str, status: str) -> None:
        with contextlib.suppress(KeyError):  # the fake was reset meanwhile
            self.set_status(message_id, status)

    def _report(self, message_id: str, status: str, error: dict[str, Any] | None) -> None:
        try:
            message = self.set_status(message_id, status, error)
            body = self.receipt(message_id, status, error)
        except KeyError:
            return  # the fake was reset meanwhile
        target = self.target()
        url = message.delivery_url or target.url
        if not url:
            return  # no URL in the message and no subscription: Infobip reports nothing
        headers = {"Content-Type": "application/json"}
        if target.basic_auth:
            token = base64.b64encode(target.basic_auth.encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        answer = post(url, json.dumps(body).encode(), headers)
        with self._lock:
            self.answers.append(answer)
