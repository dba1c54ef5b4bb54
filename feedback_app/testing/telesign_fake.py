"""A local fake of the Telesign SMS Verify calls this app makes, for the real telesign SDKs.

``TelesignFake`` is a WSGI app serving what ``telesignenterprise.verify.VerifyClient`` calls:

- ``POST /v1/verify/sms``: send an SMS Verify transaction (form fields as Telesign checks them);
- ``GET /v1/verify/{reference_id}``: its status;
- ``PUT /v1/verify/completion/{reference_id}``: record its completion (the conversion).

Paths may come under a prefix (``/telesign/v1/verify/sms``, the demo's one port for all fakes):
the SDK joins its ``rest_endpoint`` and the resource, and signs the resource alone.

Requests need Telesign's authentication: Digest (``Authorization: TSA <customer id>:<signature>``,
HMAC-SHA256 with the base64-decoded API key over method, content type, date, ``x-ts-auth-method``,
``x-ts-nonce``, the form body and the resource, as ``telesign.rest.RestClient`` signs, nonces
not reused) or Basic (customer id and API key). Answers are Telesign's JSON
``{"reference_id", "sub_resource", "errors": [{"code", "description"}], "status": {"code",
"description", "updated_on"}}``; the SDK returns every answer, error or not. Example::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.telesign_fake import API_KEY, CUSTOMER_ID, TelesignFake

    fake = TelesignFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"telesign": {"CUSTOMER_ID": CUSTOMER_ID, "API_KEY": API_KEY,
                                   "BASE_URL": server.url}},
    }):
        message = feedback_app.send(provider="telesign", to="+14155550123", body="Code: 482913")
        fake.transactions[message.provider_message_id].template  # "Code: 482913"
        feedback_app.confirm(message)  # after commit, the outbox sends the completion
        fake.completions  # [message.provider_message_id]

``fail_next`` makes the next requests fail, ``latency`` delays every answer, ``set_status`` moves
a transaction on and ``callback`` builds the signed delivery report Telesign would post.
``CarrierTelesignFake`` posts those reports by itself, for the demo.
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
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .carrier import call_later, post, unreachable
from .server import json_response, read_body

#: Credentials the fake accepts unless told others (the API key is base64, as Telesign's are).
CUSTOMER_ID = "FFFFFFFF-EEEE-DDDD-1234-AB1234567890"
API_KEY = base64.b64encode(b"feedback-app-telesign-fake-api-key").decode()

#: Telesign's descriptions of the status codes the fake plays.
DESCRIPTIONS: dict[int, str] = {
    200: "Delivered to handset",
    203: "Delivered to gateway",
    207: "Error delivering SMS to handset (reason unknown)",
    210: "Temporary phone error",
    211: "Permanent phone error",
    230: "Message blocked by Telesign",
    250: "Final status unknown",
    290: "Message in progress",
    292: "Queued by gateway",
    295: "Status delayed",
    500: "Transaction not attempted",
    501: "Not authorized",
    599: "Status not available",
    1900: "Verify completion successfully recorded",
}

#: Default error code and description of the failures ``fail_next`` plays, by HTTP status.
FAILURES: dict[int, tuple[int, str]] = {
    400: (-10001, "Invalid Request"),
    401: (-30006, "Invalid Signature"),
    404: (-10001, "CustomerID/ReferenceID not found"),
    429: (-40007, "Rate Limit Exceeded"),
    500: (-90001, "System Unavailable, Please try again later."),
    503: (-90001, "System Unavailable, Please try again later."),
}


_ROUTE = re.compile(
    r"(?:/[^?]*?)?(?P<resource>/v1/verify/(?:(?P<sms>sms)|completion/(?P<done>[^/]+)|(?P<ref>[^/]+)))"
)
_PHONE = re.compile(r"[1-9][0-9]{6,14}")
_VERIFY_CODE = re.compile(r"[0-9]{3,7}")
#: Telesign's template limit once raised on request (160 by default).
MAX_TEMPLATE = 1600
#: How far a Digest request's date may be from the fake's clock.
DATE_TOLERANCE = 15 * 60


class TelesignError(Exception):
    """An error answer: HTTP ``status``, Telesign's ``errors[].code`` and ``status.code``."""

    def __init__(self, status: int, code: int, description: str, *, status_code: int = 500) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description
        self.status_code = status_code

    def payload(self, reference_id: str | None = None) -> dict[str, Any]:
        return {
            "reference_id": reference_id,
            "sub_resource": "sms",
            "errors": [{"code": self.code, "description": self.description}],
            "status": {
                "code": self.status_code,
                "description": DESCRIPTIONS.get(self.status_code, ""),
                "updated_on": _timestamp(_now()),
            },
        }


def _unauthorized(code: int, description: str) -> TelesignError:
    return TelesignError(401, code, description, status_code=501)


@dataclass
class FakeTransaction:
    """One SMS Verify transaction the fake accepted (it keeps the text, as Telesign does)."""

    reference_id: str
    phone_number: str
    template: str | None
    verify_code: str | None
    sender_id: str | None
    callback_url: str | None
    status_code: int
    updated_on: datetime
    submitted_on: datetime
    #: Completions recorded for it (``PUT /v1/verify/completion``).
    completed: int = 0
    #: Every other form field, as received.
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class FakeRequest:
    """One request as the fake received it."""

    method: str
    #: The resource (``/v1/verify/sms``), without any prefix the base URL had.
    resource: str
    path: str
    form: dict[str, str]
    #: Lower-case header names; Authorization is not kept.
    headers: dict[str, str]
    #: The customer id the request was authenticated as, "" when it was not.
    customer_id: str


class TelesignFake:
    """WSGI app faking Telesign's SMS Verify, status and completion resources; see the module."""

    def __init__(
        self,
        *,
        customer_id: str = CUSTOMER_ID,
        api_key: str = API_KEY,
        latency: float = 0.0,
    ) -> None:
        self.customer_id = customer_id
        self.api_key = api_key
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and state -------------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every transaction, request, completion and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer (the request is handled at once).
            self.latency = latency
            #: reference_id -> transaction.
            self.transactions: dict[str, FakeTransaction] = {}
            #: reference_id of every completion received, oldest first.
            self.completions: list[str] = []
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            self._nonces: set[str] = set()
            self._failures: deque[TelesignError] = deque()

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 503,
        code: int | None = None,
        description: str | None = None,
    ) -> None:
        """Answer the next ``count`` requests with HTTP ``status`` and Telesign's error ``code``
        (default: Telesign's for that status, -40007 for 429...)."""
        default_code, default_description = FAILURES.get(status, (-10001, "Invalid Request"))
        status_code = 501 if status == 401 else (599 if status == 404 else 500)
        error = TelesignError(
            status,
            default_code if code is None else code,
            default_description if description is None else description,
            status_code=status_code,
        )
        with self._lock:
            self._failures.extend(error for _ in range(count))

    def set_status(self, reference_id: str, code: int) -> None:
        """Move a transaction on, as the carrier would (203, 200, 210...)."""
        with self._lock:
            transaction = self.transactions[reference_id]
            transaction.status_code = code
            transaction.updated_on = _now()

    def requests_to(self, method: str, prefix: str) -> list[FakeRequest]:
        """Requests received with ``method`` whose resource starts with ``prefix``."""
        with self._lock:
            return [
                r for r in self.requests if r.method == method and r.resource.startswith(prefix)
            ]

    # -- what Telesign posts back ------------------------------------------------------------

    def sign(self, body: bytes, api_key: str | None = None) -> str:
        """The callback signature of ``body``: base64 HMAC-SHA256 with the decoded API key."""
        key = base64.b64decode(api_key or self.api_key)
        return base64.b64encode(hmac.new(key, body, hashlib.sha256).digest()).decode()

    def callback(
        self, reference_id: str, code: int, *, api_key: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """The delivery report Telesign posts for ``reference_id`` reaching ``code``: the JSON
        body and its headers, signed with ``api_key`` (default: the fake's)."""
        with self._lock:
            transaction = self.transactions.get(reference_id)
            submitted = transaction.submitted_on if transaction else _now()
        payload = {
            "reference_id": reference_id,
            "sub_resource": "sms",
            "submit_timestamp": _timestamp(submitted),
            "errors": [],
            "status": {
                "code": code,
                "description": DESCRIPTIONS.get(code, ""),
                "updated_on": _timestamp(_now()),
            },
            "verify": {"code_state": "UNKNOWN", "code_entered": None},
            "additional_info": {
                "message_parts_count": 1,
                "mcc": "310",
                "mnc": "004",
                "price": "0.0100",
                "currency": "USD",
            },
        }
        body = json.dumps(payload).encode()
        signature = self.sign(body, api_key)
        headers = {
            "Authorization": f"TSA {self.customer_id}:{signature}",
            "X-TS-Authorization": signature,
            "Content-Type": "application/json",
        }
        return body, headers

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        raw = read_body(environ)
        match = _ROUTE.fullmatch(path)
        resource = match["resource"] if match else path
        query = environ.get("QUERY_STRING", "")
        form_text = raw.decode("utf-8", "replace") if method in ("POST", "PUT") else query
        form = {name: values[-1] for name, values in parse_qs(form_text).items()}
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key != "HTTP_AUTHORIZATION"
        }
        content_type = environ.get("CONTENT_TYPE", "")
        reference_id = None
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            customer_id = ""
            try:
                if failure is not None:
                    raise failure
                customer_id = self._authenticate(environ, method, content_type, raw, resource)
                if match is None:
                    raise TelesignError(404, -10001, f"The requested resource {path} was not found")
                reference_id = match["done"] or match["ref"]
                status, payload = self._dispatch(method, match, form)
            except TelesignError as exc:
                status, payload = exc.status, exc.payload(reference_id)
            self.requests.append(
                FakeRequest(method, resource, path, form, headers, customer_id=customer_id)
            )
        if latency:
            time.sleep(latency)
        return json_response(start_response, status, payload)

    def _authenticate(
        self, environ: dict[str, Any], method: str, content_type: str, body: bytes, resource: str
    ) -> str:
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if not authorization:
            raise _unauthorized(-30004, "Missing required 'Authorization' header")
        scheme, _, credentials = authorization.partition(" ")
        if scheme == "Basic":
            try:
                decoded = base64.b64decode(credentials, validate=True).decode()
            except ValueError as exc:
                raise _unauthorized(
                    -30005, "Required 'Authorization' header is not in the correct format"
                ) from exc
            customer_id, _, api_key = decoded.partition(":")
            if customer_id != self.customer_id:
                raise _unauthorized(-30000, "Invalid Customer ID.")
            if not secrets.compare_digest(api_key, self.api_key):
                raise _unauthorized(-30015, "Invalid API Key.")
            return customer_id
        if scheme != "TSA" or ":" not in credentials:
            raise _unauthorized(
                -30005, "Required 'Authorization' header is not in the correct format"
            )
        customer_id, _, signature = credentials.rpartition(":")
        if customer_id != self.customer_id:
            raise _unauthorized(-30000, "Invalid Customer ID.")
        auth_method = environ.get("HTTP_X_TS_AUTH_METHOD", "")
        if auth_method.upper() != "HMAC-SHA256":
            raise TelesignError(401, -30008, "Invalid 'x-ts-auth-method' header.")
        date = environ.get("HTTP_X_TS_DATE") or environ.get("HTTP_DATE")
        if not date:
            raise _unauthorized(-30007, "Missing required 'Date' or 'x-ts-date' header")
        try:
            sent_at = datetime.strptime(date, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
        except ValueError as exc:
            raise _unauthorized(
                -30009, "'Date' or 'x-ts-date' header is not RFC822 compliant"
            ) from exc
        if abs((_now() - sent_at).total_seconds()) > DATE_TOLERANCE:
            raise _unauthorized(
                -30010, "'Date' or 'x-ts-date' header is not within tolerable range"
            )
        nonce = environ.get("HTTP_X_TS_NONCE", "")
        fields = body.decode("utf-8", "replace") if method in ("POST", "PUT") else ""
        string_to_sign = (
            f"{method}\n{content_type}\n{date}\nx-ts-auth-method:{auth_method}\nx-ts-nonce:{nonce}"
            + (f"\n{fields}" if content_type and fields else "")
            + f"\n{resource}"
        )
        expected = base64.b64encode(
            hmac.new(
                base64.b64decode(self.api_key), string_to_sign.encode(), hashlib.sha256
            ).digest()
        ).decode()
        if not secrets.compare_digest(signature, expected):
            raise _unauthorized(-30006, "Invalid Signature")
        if nonce in self._nonces:
            raise _unauthorized(-30012, "'x-ts-nonce' header value has been used recently")
        if nonce:
            self._nonces.add(nonce)
        return customer_id

    def _dispatch(
        self, method: str, match: re.Match[str], form: dict[str, str]
    ) -> tuple[int, dict[str, Any]]:
        if match["sms"]:
            if method != "POST":
                raise TelesignError(405, -10001, "Method not allowed")
            return 200, self._send(form)
        reference_id = match["done"] or match["ref"]
        transaction = self.transactions.get(reference_id)
        if transaction is None:
            raise TelesignError(404, -10001, "CustomerID/ReferenceID not found", status_code=599)
        if match["done"]:
            if method != "PUT":
                raise TelesignError(405, -10001, "Method not allowed")
            transaction.completed += 1
            self.completions.append(reference_id)
            return 200, {
                "reference_id": reference_id,
                "sub_resource": "sms",
                "errors": [],
                "status": {
                    "code": 1900,
                    "description": DESCRIPTIONS[1900],
                    "updated_on": _timestamp(_now()),
                },
            }
        if method != "GET":
            raise TelesignError(405, -10001, "Method not allowed")
        return 200, _status_payload(transaction)

    def _send(self, form: dict[str, str]) -> dict[str, Any]:
        phone_number = form.get("phone_number", "")
        if not phone_number:
            raise TelesignError(400, -10001, "Invalid Request: Missing Parameter: phone_number")
        if not _PHONE.fullmatch(phone_number):
            raise TelesignError(
                400, -10001, f"Invalid Request: PhoneNumber Parameter: {phone_number}"
            )
        template = form.get("template")
        if template is not None and len(template) > MAX_TEMPLATE:
            raise TelesignError(400, -10001, "Invalid Request: Template Parameter: too long")
        verify_code = form.get("verify_code")
        if verify_code is not None and not _VERIFY_CODE.fullmatch(verify_code):
            raise TelesignError(
                400, -10001, f"Invalid Request: VerifyCode Parameter: {verify_code}"
            )
        callback_url = form.get("callback_url")
        if callback_url is not None and not _valid_url(callback_url):
            raise TelesignError(
                400, -10001, f"Invalid Request: CallbackUrl Parameter: {callback_url}"
            )
        sender_id = form.get("sender_id")
        if sender_id is not None and len(sender_id) > 20:
            raise TelesignError(400, -10001, f"Invalid Request: SenderId Parameter: {sender_id}")
        now = _now()
        known = {"phone_number", "template", "verify_code", "callback_url", "sender_id"}
        transaction = FakeTransaction(
            reference_id=secrets.token_hex(16).upper(),
            phone_number=phone_number,
            template=template,
            verify_code=verify_code,
            sender_id=sender_id,
            callback_url=callback_url,
            status_code=290,
            updated_on=now,
            submitted_on=now,
            extra={name: value for name, value in form.items() if name not in known},
        )
        self.transactions[transaction.reference_id] = transaction
        return {
            **_status_payload(transaction),
            "resource_uri": f"/v1/verify/{transaction.reference_id}",
        }


class CarrierTelesignFake(TelesignFake):
    """A ``TelesignFake`` whose transactions move on by themselves and call back, signed.

    A transaction is ``203`` (delivered to gateway) after ``delays[0]`` seconds, then ``200``
    (delivered to handset) or ``210`` (temporary phone error: the phone is off) after
    ``delays[1]``. About ``undelivered_rate`` of the numbers are unreachable, always the same
    ones (``carrier.unreachable``). Reports go to the send's ``callback_url``, else to the one
    ``callback_target`` gives (the account's callback URL: by default this key's webhook under
    ``PUBLIC_URL``); without either nothing is posted.
    """

    def __init__(
        self,
        *,
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        callback_target: Callable[[], str | None] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.delays = delays
        self.undelivered_rate = undelivered_rate
        self.callback_target = callback_target or callback_url_from_settings

    def _send(self, form: dict[str, str]) -> dict[str, Any]:
        payload = super()._send(form)
        reference_id = payload["reference_id"]
        to = "+" + form["phone_number"]
        final = 210 if unreachable(to, self.undelivered_rate) else 200
        url = form.get("callback_url")
        for delay, code in zip(self.delays, (203, final), strict=True):
            call_later(delay, self._call_back, reference_id, url, code)
        return payload

    def _call_back(self, reference_id: str, url: str | None, code: int) -> None:
        try:
            self.set_status(reference_id, code)
        except KeyError:
            return  # the fake was reset meanwhile
        url = url or self.callback_target()
        if not url:
            return
        body, headers = self.callback(reference_id, code)
        post(url, body, headers)


def callback_url_from_settings(provider: str = "telesign") -> str | None:
    """The account-level callback URL a Telesign account would have: ``provider``'s webhook
    under ``PUBLIC_URL``; None without ``PUBLIC_URL``."""
    from ..providers.base import webhook_url

    return webhook_url("telesign", provider)


def _now() -> datetime:
    return datetime.now(UTC)


def _timestamp(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _valid_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _status_payload(transaction: FakeTransaction) -> dict[str, Any]:
    return {
        "reference_id": transaction.reference_id,
        "sub_resource": "sms",
        "errors": [],
        "status": {
            "code": transaction.status_code,
            "description": DESCRIPTIONS.get(transaction.status_code, ""),
            "updated_on": _timestamp(transaction.updated_on),
        },
        "verify": {"code_state": "UNKNOWN", "code_entered": ""},
    }
