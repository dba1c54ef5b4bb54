"""A local fake of Amazon Chime SDK Messaging's two calls this app makes, for the real boto3 client.

``ChimeFake`` is a WSGI app speaking Chime's REST-JSON wire format: ``SendChannelMessage``
(``POST /channels/{channelArn}/messages``) and ``GetChannelMessageStatus``
(``GET /channels/{channelArn}/messages/{messageId}?scope=message-status``). Errors use the
rest-json shape botocore turns into the modeled exception (``client.exceptions.BadRequestException``
...): an ``x-amzn-ErrorType`` header and a ``{"Code": ..., "Message": ...}`` body.

Example, in a host project's test (pytest-django)::

    import feedback_app
    from feedback_app.tasks import poll_statuses
    from feedback_app.testing import FakeServer
    from feedback_app.testing.chime_fake import ChimeFake

    def test_otp_over_chime(settings):
        fake = ChimeFake()
        fake.set_send_status(CHANNEL_ARN, "PENDING")  # the channel has a flow: processing pending
        with FakeServer(fake) as server:
            settings.FEEDBACK_APP = {
                **settings.FEEDBACK_APP,
                "PROVIDERS": {"chime": {
                    "ENDPOINT_URL": server.url, "REGION": "us-east-1",
                    "ACCESS_KEY_ID": "test", "SECRET_ACCESS_KEY": "test",
                    "CHIME_BEARER": BOT_ARN,
                }},
            }
            message = feedback_app.send(
                provider="chime", channel="chat", to=CHANNEL_ARN, body="Your code is 123456"
            )
            fake.settle(message.provider_message_id, "SENT")  # the processor let it through
            poll_statuses()  # the message is now delivered

Validation follows the service model (required members, enums, lengths, patterns); what the
service checks beyond it (channel membership, permissions) is not modelled.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from .server import read_body

#: Modeled errors of the service: name -> (HTTP status, the ``Code`` member it carries).
ERRORS: dict[str, tuple[int, str]] = {
    "BadRequestException": (400, "BadRequest"),
    "ConflictException": (409, "Conflict"),
    "ForbiddenException": (403, "Forbidden"),
    "NotFoundException": (404, "NotFound"),
    "ResourceLimitExceededException": (400, "ResourceLimitExceeded"),
    "ServiceFailureException": (500, "ServiceFailure"),
    "ServiceUnavailableException": (503, "ServiceUnavailable"),
    "ThrottledClientException": (429, "Throttled"),
    "UnauthorizedClientException": (401, "Unauthorized"),
}

#: ``ChannelMessageStatus`` values.
STATUSES = frozenset({"SENT", "PENDING", "FAILED", "DENIED"})

# Patterns and limits from the service model (chime-sdk-messaging 2021-05-15).
_ARN = re.compile(
    r"arn:[a-z0-9-.]{1,63}:[a-z0-9-.]{0,63}:[a-z0-9-.]{0,63}:[a-z0-9-.]{0,63}:[^/].{0,1023}"
)
_TOKEN = re.compile(r"[-_a-zA-Z0-9]{2,64}")
_ID = re.compile(r"[-_a-zA-Z0-9]{1,128}")
# The ARN is one URI label (percent-encoded, "/" included), and servers hand over PATH_INFO
# decoded: anchor on the fixed suffixes instead of splitting on "/".
_SEND_PATH = re.compile(r"/channels/(?P<channel>.+)/messages")
_STATUS_PATH = re.compile(r"/channels/(?P<channel>.+)/messages/(?P<message>[^/]+)")


class ChimeError(Exception):
    """A modeled service error, answered in the rest-json error shape."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


@dataclass
class FakeChannelMessage:
    """One message the fake accepted (the fake keeps the content, as the service does)."""

    message_id: str
    channel_arn: str
    bearer: str
    content: str
    type: str
    persistence: str
    client_request_token: str
    metadata: str | None
    content_type: str | None
    sub_channel_id: str | None
    status: str
    detail: str


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it, for assertions on what went over the wire."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: dict[str, Any]


class ChimeFake:
    """WSGI app faking ``SendChannelMessage`` and ``GetChannelMessageStatus``; see the module.

    Sends answer ``SENT`` (a channel without a flow) unless ``set_send_status`` says otherwise.
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration -----------------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, request, failure and channel setting (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer (for client timeouts).
            self.latency = latency
            #: message id -> message accepted.
            self.messages: dict[str, FakeChannelMessage] = {}
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            self._send_status: dict[str, tuple[str, str]] = {}
            self._tokens: dict[tuple[str, str], str] = {}
            self._failures: deque[ChimeError] = deque()

    def set_send_status(self, channel_arn: str, value: str, detail: str = "") -> None:
        """Make sends to ``channel_arn`` answer ``value``.

        ``PENDING`` is what a channel with a channel flow answers while its processor has not
        called back; ``settle`` plays the callback.
        """
        if value not in STATUSES:
            raise ValueError(f"unknown status {value!r}")
        with self._lock:
            self._send_status[channel_arn] = (value, detail)

    def settle(self, message_id: str, value: str, detail: str = "") -> None:
        """End processing of a pending message with ``SENT``, ``DENIED`` or ``FAILED``.

        A denied message is dropped, as the service documents ("we don't store them once the
        processor denies them"): its status then answers ``NotFoundException``.
        """
        if value not in STATUSES - {"PENDING"}:
            raise ValueError(f"a message settles as SENT, DENIED or FAILED, not {value!r}")
        with self._lock:
            message = self.messages[message_id]
            if message.status != "PENDING":
                raise ValueError(f"message {message_id} is {message.status}, not PENDING")
            if value == "DENIED":
                del self.messages[message_id]
            message.status, message.detail = value, detail

    def fail_next(
        self,
        count: int = 1,
        error: str = "ServiceUnavailableException",
        message: str = "Service unavailable",
    ) -> None:
        """Answer the next ``count`` requests with the modeled error ``error``."""
        if error not in ERRORS:
            raise ValueError(f"unknown error {error!r}; one of {sorted(ERRORS)}")
        with self._lock:
            self._failures.extend(ChimeError(error, message) for _ in range(count))

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = _read_request(environ)
        headers: dict[str, str] = {}
        with self._lock:
            self.requests.append(request)
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            try:
                if failure is not None:
                    raise failure
                status, payload = self._dispatch(request)
            except ChimeError as exc:
                status, code = ERRORS[exc.name]
                payload = {"Code": code, "Message": exc.message}
                headers = {"x-amzn-ErrorType": exc.name}
        # Received and processed at once, answered late: a client that times out has still
        # been heard, as with the real service (and the record stays in its own test).
        if latency:
            time.sleep(latency)
        return _respond(start_response, status, payload, headers)

    def _dispatch(self, request: FakeRequest) -> tuple[int, dict[str, Any]]:
        if "authorization" not in request.headers:
            raise ChimeError("UnauthorizedClientException", "Missing Authentication Token")
        if request.method == "POST" and (match := _SEND_PATH.fullmatch(request.path)):
            return 201, self._send(match["channel"], request)
        if (
            request.method == "GET"
            and request.query.get("scope") == ["message-status"]
            and (match := _STATUS_PATH.fullmatch(request.path))
        ):
            return 200, self._status(match["channel"], match["message"], request)
        raise ChimeError("NotFoundException", f"No route for {request.method} {request.path}")

    def _send(self, channel_arn: str, request: FakeRequest) -> dict[str, Any]:
        body = request.body
        bearer = _bearer(request)
        _check_arn(channel_arn, "ChannelArn")
        content = body.get("Content")
        if not isinstance(content, str) or not content:
            raise ChimeError("BadRequestException", "Content must be a non-empty string")
        kind = body.get("Type")
        if kind not in ("STANDARD", "CONTROL"):
            raise ChimeError("BadRequestException", "Type must be STANDARD or CONTROL")
        if body.get("Persistence") not in ("PERSISTENT", "NON_PERSISTENT"):
            raise ChimeError(
                "BadRequestException", "Persistence must be PERSISTENT or NON_PERSISTENT"
            )
        token = body.get("ClientRequestToken")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ChimeError(
                "BadRequestException", "ClientRequestToken must be 2-64 characters [-_a-zA-Z0-9]"
            )
        metadata = _optional(body, "Metadata", 1024)
        content_type = _optional(body, "ContentType", 45)
        sub_channel_id = _optional(body, "SubChannelId", 128)
        if sub_channel_id is not None and not _ID.fullmatch(sub_channel_id):
            raise ChimeError("BadRequestException", "SubChannelId must match [-_a-zA-Z0-9]*")
        size = len(content.encode())
        if kind == "CONTROL" and (size > 30 or metadata):
            raise ChimeError(
                "BadRequestException", "CONTROL messages are at most 30 bytes, without metadata"
            )
        if kind == "STANDARD" and size > 4096:
            raise ChimeError("BadRequestException", "STANDARD messages are at most 4 KB")

        fields = {
            "channel_arn": channel_arn,
            "bearer": bearer,
            "content": content,
            "type": kind,
            "persistence": body["Persistence"],
            "client_request_token": token,
            "metadata": metadata,
            "content_type": content_type,
            "sub_channel_id": sub_channel_id,
        }
        # An idempotency token names one request: repeating it (an SDK retry) answers the
        # message it created; reusing it for a different request is a conflict.
        known = self._tokens.get((bearer, token))
        if known is not None and known in self.messages:
            message = self.messages[known]
            if any(getattr(message, name) != value for name, value in fields.items()):
                raise ChimeError(
                    "ConflictException", "ClientRequestToken was used for a different request"
                )
        else:
            value, detail = self._initial_status(channel_arn)
            message = FakeChannelMessage(
                message_id=uuid.uuid4().hex, status=value, detail=detail, **fields
            )
            self.messages[message.message_id] = message
            self._tokens[(bearer, token)] = message.message_id
            self._created(message)
        answer: dict[str, Any] = {
            "ChannelArn": channel_arn,
            "MessageId": message.message_id,
            "Status": _status_structure(message),
        }
        if sub_channel_id is not None:
            answer["SubChannelId"] = sub_channel_id
        return answer

    def _status(self, channel_arn: str, message_id: str, request: FakeRequest) -> dict[str, Any]:
        bearer = _bearer(request)
        _check_arn(channel_arn, "ChannelArn")
        message = self.messages.get(message_id)
        if message is None or message.channel_arn != channel_arn:
            raise ChimeError("NotFoundException", f"Message {message_id} not found")
        if message.bearer != bearer:
            raise ChimeError("ForbiddenException", "Only the message sender can get its status")
        return {"Status": _status_structure(message)}

    # -- hooks for subclasses (called with the lock held) -------------------------------------

    def _initial_status(self, channel_arn: str) -> tuple[str, str]:
        """The status (and detail) a new message to ``channel_arn`` gets."""
        return self._send_status.get(channel_arn, ("SENT", ""))

    def _created(self, message: FakeChannelMessage) -> None:
        """Called once per new message, after it is stored."""


def _read_request(environ: dict[str, Any]) -> FakeRequest:
    raw = read_body(environ)
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"__unparsable__": raw.decode(errors="replace")}
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    return FakeRequest(
        method=environ["REQUEST_METHOD"],
        path=environ.get("PATH_INFO", ""),
        query=parse_qs(environ.get("QUERY_STRING", "")),
        headers=headers,
        body=body if isinstance(body, dict) else {},
    )


def _bearer(request: FakeRequest) -> str:
    bearer = request.headers.get("x-amz-chime-bearer", "")
    if not bearer:
        raise ChimeError("BadRequestException", "The x-amz-chime-bearer header is required")
    _check_arn(bearer, "ChimeBearer")
    return bearer


def _check_arn(value: str, name: str) -> None:
    if not 5 <= len(value) <= 1600 or not _ARN.fullmatch(value):
        raise ChimeError("BadRequestException", f"{name} is not a valid ARN")


def _optional(body: dict[str, Any], name: str, max_length: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise ChimeError("BadRequestException", f"{name} must be a string of at most {max_length}")
    return value


def _status_structure(message: FakeChannelMessage) -> dict[str, str]:
    structure = {"Value": message.status}
    if message.detail:
        structure["Detail"] = message.detail
    return structure


def _respond(
    start_response: Callable[..., Any],
    status: int,
    payload: dict[str, Any],
    extra_headers: dict[str, str] | None = None,
) -> list[bytes]:
    data = json.dumps(payload).encode()
    reasons = {200: "OK", 201: "Created"}
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        ("x-amzn-RequestId", str(uuid.uuid4())),
        *(extra_headers or {}).items(),
    ]
    start_response(f"{status} {reasons.get(status, 'Error')}", headers)
    return [data]
