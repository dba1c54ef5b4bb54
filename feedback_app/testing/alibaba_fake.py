"""A local fake of Alibaba Cloud SMS (international, API version 2018-05-01) for the real SDK.

``AlibabaFake`` is a WSGI app speaking the RPC wire ``alibabacloud-dysmsapi20180501`` uses:
``POST /`` with the action in ``x-acs-action``, the version in ``x-acs-version``, every parameter
in the query string, and the ACS3 signature in ``Authorization``
(``ACS3-HMAC-SHA256 Credential=<AccessKeyId>,SignedHeaders=...,Signature=<hex>``), which the fake
recomputes with the access key secret as the service does. It serves the three actions this app
calls:

- ``SendMessageToGlobe`` (``To``, ``Message``, ``From``, ``TaskId``, ``ValidityPeriod``...);
- ``SmsConversion`` (``MessageId``, ``Delivered``, ``ConversionTime``, ``To``);
- ``QueryMessage`` (``MessageId``).

Gateway errors (signature, access key, throttling, missing parameters) come as an HTTP error
with ``{"RequestId", "HostId", "Code", "Message", "Recommend"}``, which the SDK raises as
``ClientException`` / ``ServerException``; an SMS error comes as HTTP 200 with the code in
``ResponseCode`` (anything but ``OK``), as the international API answers it.

The endpoint may carry a path: the SDK signs ``/`` whatever the URL's path, so the fake strips
``path_prefix`` (e.g. ``/alibaba``, when served under it beside other fakes) before checking.

Example, in a host project's test::

    from feedback_app.testing import FakeServer
    from feedback_app.testing.alibaba_fake import ACCESS_KEY_ID, ACCESS_KEY_SECRET, AlibabaFake

    fake = AlibabaFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"alibaba": {"ACCESS_KEY_ID": ACCESS_KEY_ID,
                                  "ACCESS_KEY_SECRET": ACCESS_KEY_SECRET,
                                  "BASE_URL": server.url, "WEBHOOK_TOKEN": "s3cret"}},
    }):
        message = feedback_app.send(provider="alibaba", to="+6591234567", body="Code: 482913")
        feedback_app.confirm(message)  # after commit, the outbox calls SmsConversion
        fake.conversions  # [FakeConversion(message_id=..., delivered="true", ...)]
        fake.receipt(message.provider_message_id, "1")  # the SmsReport push body

``CarrierAlibabaFake`` (the live demo) also pushes status reports to the app's webhook.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, quote

from .carrier import call_later, post, unreachable
from .server import read_body, reason

#: Credentials the fake accepts unless told others.
ACCESS_KEY_ID = "LTAI5tFakeAccessKeyId01"
ACCESS_KEY_SECRET = "fake-access-key-secret"  # noqa: S105 (a test credential)

VERSION = "2018-05-01"
SIGNATURE_ALGORITHM = "ACS3-HMAC-SHA256"

#: How far ``x-acs-date`` may be from the fake's clock, as the service allows (15 minutes).
CLOCK_SKEW = 15 * 60

#: Gateway error code -> (HTTP status, message), as Alibaba Cloud's API gateway answers them.
GATEWAY_ERRORS: dict[str, tuple[int, str]] = {
    "Throttling.User": (400, "Request was denied due to user flow control."),
    "Throttling.Api": (400, "Request was denied due to api flow control."),
    "Throttling": (400, "Request was denied due to request throttling."),
    "ServiceUnavailable": (503, "The request has failed due to a temporary failure of the server."),
    "InternalError": (500, "The request processing has failed due to some unknown error."),
    "MissingParameter": (
        400,
        "The input parameter that is mandatory for processing this request is not supplied.",
    ),  # noqa: E501
    "InvalidParameter": (400, "The specified parameter is not valid."),
    "InvalidAccessKeyId.NotFound": (404, "Specified access key is not found."),
    "SignatureDoesNotMatch": (400, "Specified signature is not matched with our calculation."),
    "IncompleteSignature": (400, "The request signature does not conform to Aliyun standards."),
    "InvalidTimeStamp.Expired": (400, "Specified time stamp or date value is expired."),
    "SignatureNonceUsed": (400, "Specified signature nonce was used already."),
    "InvalidAction.NotFound": (
        404,
        "Specified api is not found, please check your url and method.",
    ),  # noqa: E501
    "InvalidVersion": (400, "Specified parameter Version is not valid."),
    "Forbidden.RAM": (403, "User not authorized to operate on the specified resource."),
}

#: SMS result codes (``ResponseCode``) the fake can answer, from the international error codes
#: page; ``OK`` is success.
RESPONSE_CODES: dict[str, str] = {
    "OK": "The SMS Send Request was accepted",
    "INVALID_SENDERID": "The sender ID is invalid or unapproved.",
    "FORBIDDEN_ACTION": "Your account's API call permissions have been downgraded.",
    "OUT_OF_SERVICE": "The SMS service is suspended.",
    "ACCOUNT_NOT_EXISTS": "The account does not exist.",
    "MOBILE_NUMBER_ILLEGAL": "The format of the phone number is wrong.",
    "INVALID_PARAMETERS": "Parameter is abnormal.",
    "PARAM_LENGTH_LIMIT": "The length of parameter value exceeds limit.",
    "AMOUNT_NOT_ENOUGH": "Account balance insufficient.",
    "COUNTRY_RESTRICTED": "The phone number from the Chinese mainland is not supported.",
    "BUSINESS_LIMIT_CONTROL": "Delivery frequency exceeds the limit.",
    "DATA_NOT_EXIST": "The data does not exist.",
    "SYSTEM_ERROR": "System error.",
}

#: Delivery status codes of a message (``Status`` in QueryMessage and the SmsReport push).
STATUS_SENT = "1"
STATUS_FAILED = "2"
STATUS_SENDING = "3"
STATUS_INVALID = "6"

_NUMBER = re.compile(r"[1-9][0-9]{6,15}")
_SENDER = re.compile(r"[0-9]{1,15}|(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}")
_AUTHORIZATION = re.compile(
    rf"{SIGNATURE_ALGORITHM} Credential=(?P<credential>[^,]+),"
    r"SignedHeaders=(?P<signed>[^,]+),Signature=(?P<signature>[0-9a-f]+)"
)


_message_numbers = itertools.count(1)


class AlibabaError(Exception):
    """A gateway error (HTTP error status) or, with ``business=True``, a ``ResponseCode``."""

    def __init__(self, code: str, message: str = "", *, business: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.business = business
        self.message = message or (
            RESPONSE_CODES.get(code, "") if business else GATEWAY_ERRORS.get(code, (400, ""))[1]
        )


@dataclass
class FakeGlobeMessage:
    """One message the fake accepted (with its body and number, for assertions)."""

    message_id: str
    to: str
    sender: str | None
    body: str
    task_id: str | None
    validity_period: int | None
    sent_at_ms: int
    #: ``1`` sent (delivered), ``2`` failed, ``3`` being sent, ``6`` invalid (see STATUS_*).
    status: str = STATUS_SENDING
    error_code: str = ""
    error_description: str = ""
    receive_date: str = ""


@dataclass(frozen=True)
class FakeConversion:
    """One SmsConversion call as received."""

    message_id: str
    #: ``"true"`` or ``"false"``, as on the wire.
    delivered: str
    conversion_time: int | None
    to: str | None


@dataclass(frozen=True)
class FakeRequest:
    """One request as received, for assertions on what went over the wire."""

    action: str
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


class AlibabaFake:
    """WSGI app faking SendMessageToGlobe, SmsConversion and QueryMessage; see the module."""

    def __init__(
        self,
        *,
        access_key_id: str = ACCESS_KEY_ID,
        access_key_secret: str = ACCESS_KEY_SECRET,
        path_prefix: str = "",
        latency: float = 0.0,
    ) -> None:
        self.access_keys = {access_key_id: access_key_secret}
        self.path_prefix = path_prefix.rstrip("/")
        self._lock = threading.Lock()
        self.reset(latency=latency)

    # -- configuration and assertions --------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, conversion, request and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer (for client timeouts).
            self.latency = latency
            #: MessageId -> message sent.
            self.messages: dict[str, FakeGlobeMessage] = {}
            #: Every SmsConversion accepted, oldest first.
            self.conversions: list[FakeConversion] = []
            #: Every request received (signed or not), oldest first.
            self.requests: list[FakeRequest] = []
            self._failures: deque[AlibabaError] = deque()
            self._nonces: set[str] = set()

    def fail_next(self, count: int = 1, code: str = "Throttling.User", message: str = "") -> None:
        """Answer the next ``count`` requests with ``code``: a gateway error (HTTP status from
        ``GATEWAY_ERRORS``) or an SMS result code from ``RESPONSE_CODES`` (HTTP 200)."""
        business = code in RESPONSE_CODES
        if not business and code not in GATEWAY_ERRORS:
            raise ValueError(f"unknown code {code!r}")
        with self._lock:
            self._failures.extend(
                AlibabaError(code, message, business=business) for _ in range(count)
            )

    def actions(self) -> list[str]:
        """The action of every request received, oldest first."""
        with self._lock:
            return [request.action for request in self.requests]

    def set_status(
        self, message_id: str, status: str, error_code: str = "", error_description: str = ""
    ) -> FakeGlobeMessage:
        """Move a message to ``status`` (what QueryMessage answers from now on)."""
        with self._lock:
            message = self.messages[message_id]
            message.status = status
            message.error_code = error_code or ("success" if status == STATUS_SENT else "")
            message.error_description = error_description or message.error_code
            message.receive_date = _rfc2822(time.time())
            return message

    def receipt(
        self, message_id: str, status: str, error_code: str = "", error_description: str = ""
    ) -> list[dict[str, str]]:
        """The SmsReport push body (a JSON array) reporting ``status`` for the message."""
        with self._lock:
            message = self.messages[message_id]
        if not error_code:
            error_code = "success" if status == STATUS_SENT else "UNDELIV"
        return [
            {
                "To": message.to,
                "SendDate": _rfc2822(message.sent_at_ms / 1000),
                "ReceiveDate": _rfc2822(time.time()),
                "Status": status,
                "ErrorCode": error_code,
                "ErrorDescription": error_description or error_code,
                "TaskId": message.task_id or "",
                "SmsSize": "1",
                "MessageId": message.message_id,
            }
        ]

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        headers = _headers(environ)
        query = environ.get("QUERY_STRING", "")
        params = dict(parse_qsl(query, keep_blank_values=True))
        body = read_body(environ)
        if body and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
            # RPC parameters may come in a form body too; the query wins, as the service reads.
            params = {**dict(parse_qsl(body.decode(), keep_blank_values=True)), **params}
        action = headers.get("x-acs-action") or params.get("Action", "")
        request_id = str(uuid.uuid4()).upper()
        with self._lock:
            self.requests.append(FakeRequest(action, params, headers))
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            try:
                if failure is not None:
                    raise failure
                self._authenticate(environ, headers, query, body)
                answer = self._dispatch(action, headers, params)
                status = 200
            except AlibabaError as exc:
                if exc.business:
                    status = 200
                    answer = {"ResponseCode": exc.code, "ResponseDescription": exc.message}
                else:
                    status = GATEWAY_ERRORS.get(exc.code, (400, ""))[0]
                    answer = {
                        "Code": exc.code,
                        "Message": exc.message,
                        "HostId": "dysmsapi.ap-southeast-1.aliyuncs.com",
                        "Recommend": f"https://api.alibabacloud.com/troubleshoot?q={exc.code}",
                    }
            answer["RequestId"] = request_id
        # Received and processed at once, answered late: a client that times out has still
        # been heard, as with the real service.
        if latency:
            time.sleep(latency)
        data = json.dumps(answer).encode()
        start_response(
            f"{status} {reason(status)}",
            [
                ("Content-Type", "application/json;charset=utf-8"),
                ("Content-Length", str(len(data))),
            ],
        )
        return [data]

    def _authenticate(
        self, environ: dict[str, Any], headers: dict[str, str], query: str, body: bytes
    ) -> None:
        """Check the ACS3-HMAC-SHA256 signature as the gateway does."""
        authorization = headers.get("authorization", "")
        match = _AUTHORIZATION.fullmatch(authorization)
        if match is None:
            raise AlibabaError("IncompleteSignature")
        secret = self.access_keys.get(match["credential"])
        if secret is None:
            raise AlibabaError("InvalidAccessKeyId.NotFound")
        try:
            signed_at = datetime.strptime(headers.get("x-acs-date", ""), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError as exc:
            raise AlibabaError("InvalidTimeStamp.Expired") from exc
        if abs(signed_at.replace(tzinfo=UTC).timestamp() - time.time()) > CLOCK_SKEW:
            raise AlibabaError("InvalidTimeStamp.Expired")
        payload_hash = hashlib.sha256(body).hexdigest()
        if headers.get("x-acs-content-sha256") != payload_hash:
            raise AlibabaError("SignatureDoesNotMatch")
        signed = match["signed"].split(";")
        if "host" not in signed or any(h != h.lower() or h not in headers for h in signed):
            raise AlibabaError("IncompleteSignature")
        path = environ.get("PATH_INFO", "/") or "/"
        if self.path_prefix and path.startswith(self.path_prefix):
            path = path[len(self.path_prefix) :] or "/"
        canonical_request = "\n".join(
            [
                environ["REQUEST_METHOD"],
                path,
                _canonical_query(query),
                "".join(f"{name}:{headers[name].strip()}\n" for name in sorted(signed)),
                ";".join(sorted(signed)),
                payload_hash,
            ]
        )
        string_to_sign = (
            f"{SIGNATURE_ALGORITHM}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
        )
        expected = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, match["signature"]):
            raise AlibabaError("SignatureDoesNotMatch")
        nonce = headers.get("x-acs-signature-nonce", "")
        if not nonce:
            raise AlibabaError("MissingParameter", "SignatureNonce is mandatory.")
        if nonce in self._nonces:
            raise AlibabaError("SignatureNonceUsed")
        self._nonces.add(nonce)

    def _dispatch(self, action: str, headers: dict[str, str], params: dict[str, str]) -> dict:
        if headers.get("x-acs-version", params.get("Version")) != VERSION:
            raise AlibabaError("InvalidVersion")
        if action == "SendMessageToGlobe":
            return self._send_message_to_globe(params)
        if action == "SmsConversion":
            return self._sms_conversion(params)
        if action == "QueryMessage":
            return self._query_message(params)
        raise AlibabaError("InvalidAction.NotFound")

    def _send_message_to_globe(self, params: dict[str, str]) -> dict[str, Any]:
        _require(params, "To", "Message")
        to, sender = params["To"], params.get("From")
        if not _NUMBER.fullmatch(to):
            raise AlibabaError("MOBILE_NUMBER_ILLEGAL", business=True)
        if to.startswith("86"):
            raise AlibabaError("COUNTRY_RESTRICTED", business=True)
        if sender is not None and not _SENDER.fullmatch(sender):
            raise AlibabaError("INVALID_SENDERID", business=True)
        task_id = params.get("TaskId")
        if task_id is not None and not 1 <= len(task_id) <= 255:
            raise AlibabaError("PARAM_LENGTH_LIMIT", business=True)
        validity = params.get("ValidityPeriod")
        if validity is not None and not validity.isdigit():
            raise AlibabaError("InvalidParameter", "ValidityPeriod is not an integer.")
        message_id = f"{int(time.time() * 1000)}{next(_message_numbers):05d}"
        self.messages[message_id] = FakeGlobeMessage(
            message_id=message_id,
            to=to,
            sender=sender,
            body=params["Message"],
            task_id=task_id,
            validity_period=int(validity) if validity else None,
            sent_at_ms=int(time.time() * 1000),
        )
        return {
            "ResponseCode": "OK",
            "ResponseDescription": RESPONSE_CODES["OK"],
            "MessageId": message_id,
            "From": sender or "",
            "To": to,
            "Segments": "1",
            "NumberDetail": {"Country": "", "Region": "", "Carrier": ""},
        }

    def _sms_conversion(self, params: dict[str, str]) -> dict[str, Any]:
        _require(params, "MessageId", "Delivered")
        # The Python SDK sends str(bool), "True"/"False"; the gateway parses booleans
        # case-insensitively (other SDKs send "true"), so the record keeps the lower-case form.
        message_id, delivered = params["MessageId"], params["Delivered"].lower()
        if delivered not in {"true", "false"}:
            raise AlibabaError("InvalidParameter", "Delivered must be true or false.")
        message = self.messages.get(message_id)
        if message is None:
            raise AlibabaError("DATA_NOT_EXIST", business=True)
        conversion_time = params.get("ConversionTime")
        # Documented: after the message was sent, before now.
        if conversion_time is not None and (
            not conversion_time.isdigit()
            or not message.sent_at_ms < int(conversion_time) < time.time() * 1000
        ):
            raise AlibabaError("INVALID_PARAMETERS", business=True)
        self.conversions.append(
            FakeConversion(
                message_id,
                delivered,
                int(conversion_time) if conversion_time else None,
                params.get("To"),
            )
        )
        return {"ResponseCode": "OK", "ResponseDescription": "OK"}

    def _query_message(self, params: dict[str, str]) -> dict[str, Any]:
        _require(params, "MessageId")
        message = self.messages.get(params["MessageId"])
        if message is None:
            raise AlibabaError("DATA_NOT_EXIST", business=True)
        return {
            "ResponseCode": "OK",
            "ResponseDescription": "OK",
            "MessageId": message.message_id,
            "To": message.to,
            "Message": message.body,
            "Status": message.status,
            "ErrorCode": message.error_code,
            "ErrorDescription": message.error_description,
            "SendDate": _rfc2822(message.sent_at_ms / 1000),
            "ReceiveDate": message.receive_date,
            "NumberDetail": {"Country": "", "Region": "", "Carrier": ""},
        }


class CarrierAlibabaFake(AlibabaFake):
    """An ``AlibabaFake`` whose messages settle by themselves and are pushed as SmsReport.

    Alibaba pushes status reports to one account-level URL (set in the SMS console), not per
    message: ``report_url`` is that URL, or, when None, it is read from Django settings
    (``report_url_from_settings``) at each push. A message is ``3`` (being sent) at once, then
    after ``delays[1]`` seconds ``1`` (delivered) or, for about ``undelivered_rate`` of the
    numbers (``carrier.unreachable``, fixed per number), ``2`` with ``UNDELIV``. ``delays[0]``
    is when QueryMessage starts answering it as still being sent (kept for symmetry with the
    other carriers; nothing is pushed then: Alibaba pushes final reports only).
    """

    def __init__(
        self,
        *,
        report_url: str | None = None,
        provider_key: str = "alibaba",
        delays: tuple[float, float] = (1.0, 3.0),
        undelivered_rate: float = 0.1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.report_url = report_url
        self.provider_key = provider_key
        self.delays = delays
        self.undelivered_rate = undelivered_rate

    def _send_message_to_globe(self, params: dict[str, str]) -> dict[str, Any]:
        answer = super()._send_message_to_globe(params)
        final = STATUS_FAILED if unreachable("+" + answer["To"], self.undelivered_rate) else "1"
        call_later(self.delays[1], self._push, answer["MessageId"], final)
        return answer

    def _push(self, message_id: str, status: str) -> None:
        try:
            error_code = "" if status == STATUS_SENT else "UNDELIV"
            self.set_status(message_id, status, error_code)
            body = self.receipt(message_id, status, error_code)
        except KeyError:  # the fake was reset meanwhile
            return
        url = self.report_url or report_url_from_settings(self.provider_key)
        if url:
            post(url, json.dumps(body).encode(), {"Content-Type": "application/json"})


def report_url_from_settings(key: str = "alibaba") -> str | None:
    """The URL the SMS console would push to: ``PUBLIC_URL`` + this key's webhook path, with
    the provider's ``WEBHOOK_TOKEN`` as ``?token=``; None without a PUBLIC_URL."""
    from ..conf import app_settings
    from ..providers.base import webhook_url

    url = webhook_url("alibaba", key)
    if url is None:
        return None
    token = (app_settings.PROVIDERS.get(key) or {}).get("WEBHOOK_TOKEN") or ""
    return f"{url}?token={quote(token, safe='')}" if token else url


def _headers(environ: dict[str, Any]) -> dict[str, str]:
    headers = {
        key[5:].replace("_", "-").lower(): value
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers[name] = environ[key]
    return headers


def _canonical_query(query: str) -> str:
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    return "&".join(f"{key}={quote(value, safe='~')}" for key, value in pairs)


def _require(params: dict[str, str], *names: str) -> None:
    for name in names:
        if not params.get(name):
            raise AlibabaError(
                "MissingParameter",
                f'The input parameter "{name}" that is mandatory for processing this request '
                "is not supplied.",
            )


def _rfc2822(seconds: float) -> str:
    return format_datetime(datetime.fromtimestamp(seconds, UTC).astimezone())
