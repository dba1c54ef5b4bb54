"""A local fake of the Sinch SMS REST API (XMS) calls this app makes, for the real sinch client.

``SinchFake`` is a WSGI app serving, under any path prefix (the demo mounts it at ``/sinch``):

- ``POST /oauth2/token``: an OAuth token for a project's access key (HTTP Basic, form
  ``grant_type=client_credentials``), as ``auth.sinch.com`` does;
- ``POST /xms/v1/{service_plan_id or project_id}/batches``: send a text batch;
- ``GET .../batches/{batch_id}``: the batch;
- ``POST .../batches/{batch_id}/delivery_feedback``: delivery feedback (``{"recipients": [...]}``);
- ``GET .../batches/{batch_id}/delivery_report``: the batch's summary (or full) delivery report.

Requests need ``Authorization: Bearer`` with the service plan's API token, or a token from
``/oauth2/token`` for the project in the path. Errors 400 and 403 answer Sinch's XMS shape
``{"code", "text"}``; other errors ``{"error": {"code", "message", "status"}}``. The SDK raises
both as ``SmsException`` with the body in ``http_response.body``. Example::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.sinch_fake import API_TOKEN, SERVICE_PLAN_ID, SinchFake

    fake = SinchFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"sinch": {"SERVICE_PLAN_ID": SERVICE_PLAN_ID, "API_TOKEN": API_TOKEN,
                                "FROM": "+12065550100", "BASE_URL": server.url}},
    }):
        message = feedback_app.send(provider="sinch", to="+14155550123", body="Code: 482913")
        fake.batches[message.provider_message_id].feedback_enabled  # True
        feedback_app.confirm(message)  # after commit, the outbox posts the delivery feedback
        fake.feedback  # [(batch_id, ())]

``fail_next`` makes the next requests fail, ``latency`` delays every answer, ``set_status``
moves a batch on, ``report`` builds the recipient delivery report Sinch would post and
``sign_callback`` signs a callback body as Sinch's HMAC callbacks are signed. ``CarrierSinchFake``
posts those reports by itself, for the demo. The fake keeps what it received in memory.
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
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .carrier import call_later, post, unreachable
from .server import json_response, read_body, reason, request_headers

#: Credentials the fake accepts unless told others.
SERVICE_PLAN_ID = "fakeplan0123456789abcdef01234567"
API_TOKEN = "fake-sinch-api-token"  # noqa: S105 (a test credential)
PROJECT_ID = "1e1f2a3b-4c5d-6e7f-8091-a2b3c4d5e6f7"
KEY_ID = "fake-key-id"
KEY_SECRET = "fake-key-secret"  # noqa: S105 (a test credential)
#: The secret the demo's carrier signs callbacks with (the service plan's HMAC secret).
WEBHOOK_SECRET = "fake-sinch-webhook-secret"  # noqa: S105 (a test credential)

#: ``delivery_report`` values the API takes.
DELIVERY_REPORTS = frozenset({"none", "summary", "full", "per_recipient", "per_recipient_final"})

#: Delivery report status -> its code, as Sinch's delivery report error code table pairs them
#: (0 is SMPP "no error"; a failure's SMPP code is the carrier's: the fake uses 0 too).
CODES: dict[str, int] = {
    "Queued": 400,
    "Dispatched": 401,
    "Aborted": 402,
    "Cancelled": 407,
    "Delivered": 0,
    "Failed": 0,
    "Rejected": 0,
    "Deleted": 0,
    "Expired": 0,
    "Unknown": 0,
}

_ROUTE = re.compile(
    r"(?:.*?)/xms/v1/(?P<plan>[^/]+)/batches"
    r"(?:/(?P<batch>[^/]+?)(?P<sub>/delivery_feedback|/delivery_report)?)?/?"
)
_TOKEN_ROUTE = re.compile(r"(?:.*?)/oauth2/token/?")
_MSISDN = re.compile(r"\+?[1-9][0-9]{6,14}")
_ULID_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

#: Default code of the failures ``fail_next`` plays, by HTTP status: XMS codes for 400 and 403,
#: gRPC-style status names for the others.
FAILURES: dict[int, str] = {
    400: "syntax_constraint_violation",
    401: "UNAUTHENTICATED",
    403: "forbidden",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
}


class SinchError(Exception):
    """An error answer: HTTP ``status`` with a ``code`` and ``text``."""

    def __init__(self, status: int, code: str, text: str, *, oauth: bool = False) -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.text = text
        #: Answer as the OAuth token endpoint does (RFC 6749 section 5.2).
        self.oauth = oauth

    def payload(self) -> dict[str, Any]:
        if self.oauth:
            return {"error": self.code, "error_description": self.text}
        if self.status in (400, 403):
            return {"code": self.code, "text": self.text}
        return {"error": {"code": self.status, "message": self.text, "status": self.code}}


@dataclass
class FakeBatch:
    """One text batch the fake accepted (the fake keeps the body and numbers, as Sinch does)."""

    id: str
    plan: str
    to: list[str]
    from_: str | None
    body: str
    delivery_report: str
    callback_url: str | None
    client_reference: str | None
    feedback_enabled: bool
    created_at: datetime
    expire_at: datetime
    status: str = "Queued"
    code: int = 400
    #: Every other member, as received.
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    #: The JSON body (a form for the token endpoint), None without one.
    body: Any
    #: Lower-case header names; the Authorization header is not kept.
    headers: dict[str, str]
    #: "bearer", "basic" or "" (how the request authenticated itself).
    auth: str


def sign_callback(
    body: bytes, secret: str, *, nonce: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    """The headers Sinch signs a callback with: base64 HMAC-SHA256 of ``body.nonce.timestamp``
    (UTF-8) with the secret, in ``x-sinch-webhook-signature``."""
    nonce = nonce or secrets.token_urlsafe(18)
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = body + f".{nonce}.{timestamp}".encode()
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).digest()
    return {
        "x-sinch-webhook-signature-timestamp": str(timestamp),
        "x-sinch-webhook-signature-nonce": nonce,
        "x-sinch-webhook-signature-algorithm": "HmacSHA256",
        "x-sinch-webhook-signature": base64.b64encode(digest).decode(),
    }


class SinchFake:
    """WSGI app faking Sinch's SMS batches and delivery feedback; see the module."""

    def __init__(
        self,
        *,
        service_plans: dict[str, str] | None = None,
        projects: dict[str, tuple[str, str]] | None = None,
        default_originator: bool = False,
        latency: float = 0.0,
    ) -> None:
        #: Service plan id -> its API token (Bearer).
        self.service_plans = (
            {SERVICE_PLAN_ID: API_TOKEN} if service_plans is None else service_plans
        )
        #: Project id -> (access key id, key secret), for OAuth tokens.
        self.projects = {PROJECT_ID: (KEY_ID, KEY_SECRET)} if projects is None else projects
        #: Whether a batch without ``from`` is accepted (Automatic Default Originator).
        self.default_originator = default_originator
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and state -------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every batch, request, feedback, token and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer (the request is handled at once).
            self.latency = latency
            #: Batch id -> batch sent.
            self.batches: dict[str, FakeBatch] = {}
            #: Every delivery feedback received: (batch id, recipients as given), oldest first.
            self.feedback: list[tuple[str, tuple[str, ...]]] = []
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            #: OAuth access token -> project id.
            self.tokens: dict[str, str] = {}
            self._failures: deque[SinchError] = deque()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        code: str | None = None,
        text: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with an error of HTTP ``status``."""
        error = SinchError(
            status,
            FAILURES.get(status, str(status)) if code is None else code,
            reason(status) if text is None else text,
        )
        with self._lock:
            self._failures.extend(error for _ in range(count))

    def set_status(self, batch_id: str, status: str, code: int | None = None) -> None:
        """Move a batch on, as the carrier would (``Dispatched``, ``Delivered``, ``Failed``...)."""
        with self._lock:
            batch = self.batches[batch_id]
            batch.status = status
            batch.code = CODES.get(status, 0) if code is None else code

    def report(
        self, batch_id: str, status: str, code: int | None = None, *, at: datetime | None = None
    ) -> dict[str, Any]:
        """The recipient delivery report Sinch posts for the batch's (first) recipient."""
        batch = self.batches[batch_id]
        report: dict[str, Any] = {
            "type": "recipient_delivery_report_sms",
            "batch_id": batch.id,
            "recipient": batch.to[0],
            "code": CODES.get(status, 0) if code is None else code,
            "status": status,
            "at": _iso(at or _now()),
        }
        if status in ("Delivered", "Failed"):
            report["operator_status_at"] = _iso((at or _now()).replace(microsecond=0))
        if batch.client_reference is not None:
            report["client_reference"] = batch.client_reference
        return report

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        raw = read_body(environ)
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            request: FakeRequest | None = None
            try:
                request = _read_request(environ, raw)
                if failure is not None:
                    raise failure
                status, payload = self._dispatch(environ, request)
            except SinchError as exc:
                status, payload = exc.status, exc.payload()
            finally:
                self.requests.append(request or _read_request(environ, b""))
        if latency:
            time.sleep(latency)
        return json_response(start_response, status, payload)

    def _dispatch(self, environ: dict[str, Any], request: FakeRequest) -> tuple[int, Any]:
        if _TOKEN_ROUTE.fullmatch(request.path):
            if request.method != "POST":
                raise SinchError(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            return 200, self._token(environ, request)
        match = _ROUTE.fullmatch(request.path)
        if match is None:
            raise SinchError(404, "NOT_FOUND", f"{request.path} not found")
        plan = match["plan"]
        self._authenticate(environ, plan)
        batch_id, sub = match["batch"], match["sub"]
        if batch_id is None:
            if request.method != "POST":
                raise SinchError(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            return 201, self._send(plan, request.body)
        batch = self.batches.get(batch_id)
        if batch is None or batch.plan != plan:
            raise SinchError(404, "NOT_FOUND", f"Batch {batch_id} not found")
        if sub == "/delivery_feedback":
            if request.method != "POST":
                raise SinchError(405, "METHOD_NOT_ALLOWED", "Method not allowed")
            self._feedback(batch, request.body)
            return 202, None
        if request.method != "GET":
            raise SinchError(405, "METHOD_NOT_ALLOWED", "Method not allowed")
        if sub == "/delivery_report":
            return 200, _delivery_report(batch, request.query.get("type", ["summary"])[-1])
        return 200, _batch_payload(batch)

    def _token(self, environ: dict[str, Any], request: FakeRequest) -> dict[str, Any]:
        key_id, key_secret = _basic_auth(environ)
        project = next(
            (
                project
                for project, (known_id, known_secret) in self.projects.items()
                if secrets.compare_digest(key_id, known_id)
                and secrets.compare_digest(key_secret, known_secret)
            ),
            None,
        )
        if project is None:
            raise SinchError(401, "invalid_client", "Invalid client credentials", oauth=True)
        if (request.body or {}).get("grant_type") != ["client_credentials"]:
            raise SinchError(
                400, "unsupported_grant_type", "grant_type must be client_credentials", oauth=True
            )
        token = secrets.token_urlsafe(24)
        self.tokens[token] = project
        return {"access_token": token, "expires_in": 3599, "scope": "", "token_type": "bearer"}

    def _authenticate(self, environ: dict[str, Any], plan: str) -> None:
        scheme, _, token = environ.get("HTTP_AUTHORIZATION", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise SinchError(401, "UNAUTHENTICATED", "Request had invalid credentials.")
        expected = self.service_plans.get(plan)
        if expected is not None and secrets.compare_digest(token, expected):
            return
        if self.tokens.get(token) == plan:
            return
        raise SinchError(401, "UNAUTHENTICATED", "Request had invalid credentials.")

    def _send(self, plan: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise SinchError(400, "syntax_invalid_json", "The JSON body is invalid")
        to = body.get("to")
        if not isinstance(to, list) or not to or not all(isinstance(n, str) for n in to):
            raise SinchError(400, "syntax_constraint_violation", "to must be a non-empty list")
        for number in to:
            if not _MSISDN.fullmatch(number):
                raise SinchError(
                    400, "syntax_invalid_parameter_format", f"Invalid recipient {number}"
                )
        text = body.get("body")
        if not isinstance(text, str) or not text:
            raise SinchError(400, "syntax_constraint_violation", "body is required")
        if body.get("type", "mt_text") != "mt_text":
            raise SinchError(400, "syntax_invalid_parameter_format", "only mt_text is faked")
        origin = body.get("from")
        if origin is None and not self.default_originator:
            raise SinchError(400, "syntax_constraint_violation", "from is required")
        report = body.get("delivery_report", "none")
        if report not in DELIVERY_REPORTS:
            raise SinchError(
                400, "syntax_invalid_parameter_format", f"Invalid delivery_report {report}"
            )
        callback = body.get("callback_url")
        if callback is not None and not _valid_url(callback):
            raise SinchError(400, "syntax_invalid_parameter_format", "Invalid callback_url")
        feedback = body.get("feedback_enabled", False)
        reference = body.get("client_reference")
        if not isinstance(feedback, bool) or (
            reference is not None and not isinstance(reference, str)
        ):
            raise SinchError(400, "syntax_invalid_json", "Invalid field type")
        now = _now()
        known = {"to", "from", "body", "type", "delivery_report", "callback_url"}
        known |= {"client_reference", "feedback_enabled"}
        batch = FakeBatch(
            id=_ulid(),
            plan=plan,
            to=list(to),
            from_=origin,
            body=text,
            delivery_report=report,
            callback_url=callback,
            client_reference=reference,
            feedback_enabled=feedback,
            created_at=now,
            expire_at=now + timedelta(days=3),
            extra={name: value for name, value in body.items() if name not in known},
        )
        self.batches[batch.id] = batch
        self._sent(batch)
        return _batch_payload(batch)

    def _sent(self, batch: FakeBatch) -> None:
        """Hook for subclasses: a batch was accepted (called with the lock held)."""

    def _feedback(self, batch: FakeBatch, body: Any) -> None:
        recipients = body.get("recipients") if isinstance(body, dict) else None
        if not isinstance(recipients, list):
            raise SinchError(400, "syntax_constraint_violation", "recipients is required")
        if not batch.feedback_enabled:
            # Sinch: "Feedback can only be provided if feedback_enabled was set"; the answer's
            # code is not documented, the fake uses this one.
            raise SinchError(400, "syntax_constraint_violation", "feedback is not enabled")
        unknown = [number for number in recipients if number not in batch.to]
        if unknown:
            raise SinchError(400, "syntax_invalid_parameter_format", "recipients not in the batch")
        self.feedback.append((batch.id, tuple(recipients)))


class CarrierSinchFake(SinchFake):
    """A ``SinchFake`` whose batches move on by themselves and call back, signed.

    With ``per_recipient`` reports a batch is ``Dispatched`` after ``delays[0]`` seconds, then
    ``Delivered`` or ``Failed`` after ``delays[1]`` (``per_recipient_final``: only the last).
    About ``undelivered_rate`` of the numbers are unreachable (``carrier.unreachable``). Reports
    go to the batch's ``callback_url``, signed with ``webhook_secret`` as Sinch's HMAC callbacks
    are; a batch without a callback URL gets none.
    """

    def __init__(
        self,
        *,
        webhook_secret: str = WEBHOOK_SECRET,
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.webhook_secret = webhook_secret
        self.delays = delays
        self.undelivered_rate = undelivered_rate

    def _sent(self, batch: FakeBatch) -> None:
        if not batch.callback_url or batch.delivery_report not in (
            "per_recipient",
            "per_recipient_final",
        ):
            return
        final = "Failed" if unreachable(batch.to[0], self.undelivered_rate) else "Delivered"
        steps = [(self.delays[0], "Dispatched"), (self.delays[1], final)]
        if batch.delivery_report == "per_recipient_final":
            steps = steps[1:]
        for delay, status in steps:
            call_later(delay, self._call_back, batch.id, batch.callback_url, status)

    def _call_back(self, batch_id: str, url: str, status: str) -> None:
        try:
            self.set_status(batch_id, status)
            report = self.report(batch_id, status)
        except KeyError:
            return  # the fake was reset meanwhile
        body = json.dumps(report).encode()
        headers = {"Content-Type": "application/json", **sign_callback(body, self.webhook_secret)}
        post(url, body, headers)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ulid() -> str:
    """A batch id shaped like Sinch's (a ULID: 26 Crockford base-32 characters)."""
    return "".join(secrets.choice(_ULID_ALPHABET) for _ in range(26))


def _valid_url(url: Any) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _batch_payload(batch: FakeBatch) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "id": batch.id,
        "to": batch.to,
        "canceled": False,
        "body": batch.body,
        "type": "mt_text",
        "created_at": _iso(batch.created_at),
        "modified_at": _iso(batch.created_at),
        "delivery_report": batch.delivery_report,
        "expire_at": _iso(batch.expire_at),
        "feedback_enabled": batch.feedback_enabled,
        "flash_message": False,
    }
    if batch.from_ is not None:
        payload["from"] = batch.from_
    if batch.callback_url is not None:
        payload["callback_url"] = batch.callback_url
    if batch.client_reference is not None:
        payload["client_reference"] = batch.client_reference
    return payload


def _delivery_report(batch: FakeBatch, kind: str) -> dict[str, Any]:
    if kind not in ("summary", "full"):
        raise SinchError(400, "syntax_invalid_parameter_format", f"Invalid type {kind}")
    status: dict[str, Any] = {"code": batch.code, "count": len(batch.to), "status": batch.status}
    if kind == "full":
        status["recipients"] = list(batch.to)
    payload: dict[str, Any] = {
        "batch_id": batch.id,
        "statuses": [status],
        "total_message_count": len(batch.to),
        "type": "delivery_report_sms",
    }
    if batch.client_reference is not None:
        payload["client_reference"] = batch.client_reference
    return payload


def _read_request(environ: dict[str, Any], raw: bytes) -> FakeRequest:
    headers = request_headers(environ)
    content_type = headers.get("content-type", "")
    scheme = environ.get("HTTP_AUTHORIZATION", "").partition(" ")[0].lower()
    body: Any = None
    if raw:
        if content_type.startswith("application/x-www-form-urlencoded"):
            body = parse_qs(raw.decode(), keep_blank_values=True)
        else:
            try:
                body = json.loads(raw)
            except ValueError as exc:
                raise SinchError(400, "syntax_invalid_json", "The JSON body is invalid") from exc
    return FakeRequest(
        method=environ["REQUEST_METHOD"],
        path=environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        query=parse_qs(environ.get("QUERY_STRING", "")),
        body=body,
        headers=headers,
        auth=scheme if scheme in ("bearer", "basic") else "",
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
