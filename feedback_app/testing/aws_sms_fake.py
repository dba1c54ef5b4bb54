"""A local fake of AWS End User Messaging SMS (``pinpoint-sms-voice-v2``) for the real boto3 client.

``AwsSmsFake`` is a WSGI app speaking the service's AWS JSON 1.0 wire format (``POST /`` with
``X-Amz-Target: PinpointSMSVoiceV2.<Operation>``) for the two calls this app makes:
``SendTextMessage`` and ``PutMessageFeedback``. It checks what the service model says the
service checks (required members, enums, lengths, patterns, ranges) and answers errors in the
shape botocore turns into the modeled exceptions (``client.exceptions.ValidationException``...):
``{"__type": "ValidationException", "message": ..., "Reason": ..., "Fields": [...]}``.

Example, in a host project's test (a ``django.test.TestCase`` method)::

    import feedback_app
    from feedback_app.testing import FakeServer
    from feedback_app.testing.aws_sms_fake import AwsSmsFake

    fake = AwsSmsFake()
    with FakeServer(fake) as server, override_settings(FEEDBACK_APP={
        ...,
        "PROVIDERS": {"aws_sms": {"ENDPOINT_URL": server.url, "REGION": "us-east-1",
                                  "ACCESS_KEY_ID": "test", "SECRET_ACCESS_KEY": "test",
                                  "CONFIGURATION_SET": "otp", "MAX_ATTEMPTS": 1}},
    }):
        message = feedback_app.send(provider="aws_sms", to="+12065550123", body="Code: 123456")
        with self.captureOnCommitCallbacks(execute=True):  # the outbox reports after commit
            feedback_app.confirm(message)
        assert fake.feedback[message.provider_message_id] == ["RECEIVED"]
        fake.fail_next(2, "ThrottlingException")            # the next two calls are throttled
        record = fake.event_record(message.provider_message_id, "TEXT_DELIVERED")
        # ... publish json.dumps(record) through SNS (moto) to the webhook

Not modelled (undocumented or account state): whether RECEIVED is still accepted after AWS's
automatic FAILED at one hour (the fake accepts it), and the configuration set's default feedback
setting (a message sent without ``MessageFeedbackEnabled`` has no feedback record here).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NoReturn

import phonenumbers

from .server import read_body

TARGET_PREFIX = "PinpointSMSVoiceV2."
CONTENT_TYPE = "application/x-amz-json-1.0"

#: Modeled errors of the two operations -> HTTP status. AWS JSON services answer client errors,
#: throttling included, with 400; botocore reads the error from ``__type``, not the status.
ERRORS: dict[str, int] = {
    "ValidationException": 400,
    "AccessDeniedException": 400,
    "ResourceNotFoundException": 400,
    "ConflictException": 400,
    "ServiceQuotaExceededException": 400,
    "ThrottlingException": 400,
    "InternalServerException": 500,
}


@dataclass(frozen=True)
class Member:
    """A string member's constraints, copied from the service model (2022-03-31)."""

    min: int | None = None
    max: int | None = None
    pattern: str | None = None
    enum: frozenset[str] | None = None


_PHONE = Member(1, 20, r"\+?[1-9][0-9]{1,18}")
_MESSAGE_ID = Member(1, 64, r"[A-Za-z0-9_:/-]+")

SEND_TEXT_MESSAGE: dict[str, Member] = {
    "DestinationPhoneNumber": _PHONE,
    "OriginationIdentity": Member(1, 256, r"[A-Za-z0-9_:/\+-]+"),
    "MessageBody": Member(1, 1600, r"(?!\s*$)[\s\S]+"),
    "MessageType": Member(enum=frozenset({"TRANSACTIONAL", "PROMOTIONAL"})),
    "Keyword": Member(1, 30, r"[ \S]+"),
    "ConfigurationSetName": Member(1, 256, r"[A-Za-z0-9_:/-]+"),
    "MaxPrice": Member(2, 8, r"[0-9]{0,2}\.[0-9]{1,5}"),
    "ProtectConfigurationId": Member(1, 256, r"[A-Za-z0-9_:/-]+"),
}
PUT_MESSAGE_FEEDBACK: dict[str, Member] = {
    "MessageId": _MESSAGE_ID,
    "MessageFeedbackStatus": Member(enum=frozenset({"RECEIVED", "FAILED"})),
}
_CONTEXT_KEY = Member(1, 100, r"\S+")
_CONTEXT_VALUE = Member(1, 800, r"(?!\s)^[\s\S]+(?<!\s)")
_COUNTRY_PARAMETER = Member(1, 64, r"\S+")
_COUNTRY_PARAMETER_KEYS = frozenset({"IN_TEMPLATE_ID", "IN_ENTITY_ID"})

#: What the event record says for each event type (``messageStatusDescription``).
_DESCRIPTIONS: dict[str, str] = {
    "TEXT_DELIVERED": "Message has been accepted by phone",
    "TEXT_SUCCESSFUL": "Message has been accepted by phone carrier",
    "TEXT_PENDING": "Message is in progress",
    "TEXT_QUEUED": "Message is queued",
    "TEXT_BLOCKED": "Message was blocked",
    "TEXT_CARRIER_BLOCKED": "Message was blocked by the carrier",
    "TEXT_CARRIER_UNREACHABLE": "Carrier is temporarily unreachable",
    "TEXT_INVALID": "Destination phone number is invalid",
    "TEXT_INVALID_MESSAGE": "Message body is invalid",
    "TEXT_PROTECT_BLOCKED": "Message was blocked by protect configuration",
    "TEXT_SPAM": "Message was identified as spam",
    "TEXT_TTL_EXPIRED": "Message was not handed off before its time to live expired",
    "TEXT_UNKNOWN": "No final status from the carrier",
    "TEXT_UNREACHABLE": "Phone is unreachable",
}


class AwsSmsError(Exception):
    """A modeled service error; ``fields`` are its modeled members besides the message."""

    def __init__(self, name: str, message: str, **fields: Any) -> None:
        super().__init__(message)
        self.name = name
        self.message = message
        self.fields = fields


@dataclass
class FakeTextMessage:
    """One text message the fake accepted (with its body, for assertions)."""

    message_id: str
    destination: str
    origination: str | None
    body: str | None
    message_type: str | None
    configuration_set: str | None
    context: dict[str, str]
    feedback_enabled: bool
    time_to_live: int | None
    sent_at_ms: int


@dataclass(frozen=True)
class FakeRequest:
    """One request as received, for assertions on what went over the wire."""

    operation: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class AwsSmsFake:
    """WSGI app faking ``SendTextMessage`` and ``PutMessageFeedback``; see the module.

    ``configuration_sets`` and ``origination_identities``, when given, are the only ones that
    exist (others answer ``ResourceNotFoundException``); by default any well-formed one does.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        configuration_sets: Iterable[str] | None = None,
        origination_identities: Iterable[str] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self.configuration_sets = None if configuration_sets is None else set(configuration_sets)
        self.origination_identities = (
            None if origination_identities is None else set(origination_identities)
        )
        self.reset(latency=latency)

    # -- configuration and assertions --------------------------------------------------------

    def reset(self, *, latency: float = 0.0) -> None:
        """Forget every message, feedback, request and failure (one server, many tests)."""
        with self._lock:
            #: Seconds to wait before each answer (for client timeouts).
            self.latency = latency
            #: MessageId -> message sent (dry runs are not sent, so not kept).
            self.messages: dict[str, FakeTextMessage] = {}
            #: MessageId -> every MessageFeedbackStatus put, oldest first.
            self.feedback: dict[str, list[str]] = {}
            #: Every request received, oldest first.
            self.requests: list[FakeRequest] = []
            self._failures: deque[AwsSmsError] = deque()

    def fail_next(
        self,
        count: int = 1,
        error_type: str = "ThrottlingException",
        message: str = "Rate exceeded",
        **fields: Any,
    ) -> None:
        """Answer the next ``count`` requests with the modeled error ``error_type``.

        ``fields`` are the error's other members, e.g. ``Reason="MONTHLY_SPEND_LIMIT_REACHED"``.
        """
        if error_type not in ERRORS:
            raise ValueError(f"unknown error {error_type!r}; one of {sorted(ERRORS)}")
        with self._lock:
            self._failures.extend(AwsSmsError(error_type, message, **fields) for _ in range(count))

    def operations(self) -> list[str]:
        """The operation of every request received, oldest first."""
        with self._lock:
            return [request.operation for request in self.requests]

    def event_record(
        self,
        message_id: str,
        event_type: str,
        *,
        is_final: bool | None = None,
        timestamp_ms: int | None = None,
        carrier_name: str = "Example Wireless",
    ) -> dict[str, Any]:
        """The event record the service would send to event destinations (SNS ``Message``).

        ``is_final`` defaults to False for TEXT_PENDING, TEXT_QUEUED and TEXT_SENT.
        """
        with self._lock:
            message = self.messages[message_id]
        if is_final is None:
            is_final = event_type not in {"TEXT_PENDING", "TEXT_QUEUED", "TEXT_SENT"}
        number = phonenumbers.parse(message.destination)
        return {
            "eventType": event_type,
            "eventVersion": "1.0",
            "eventTimestamp": timestamp_ms or int(time.time() * 1000),
            "isFinal": is_final,
            "originationPhoneNumber": message.origination or "",
            "destinationPhoneNumber": message.destination,
            "isInternationalSend": False,
            "isoCountryCode": phonenumbers.region_code_for_number(number) or "",
            "carrierName": carrier_name,
            "messageId": message.message_id,
            "messageRequestTimestamp": message.sent_at_ms,
            "messageEncoding": "GSM",
            "messageType": message.message_type or "TRANSACTIONAL",
            "messageStatus": event_type.removeprefix("TEXT_"),
            "messageStatusDescription": _DESCRIPTIONS.get(event_type, ""),
            "context": dict(message.context),
            "totalMessageParts": 1,
            "totalMessagePrice": 0.00581,
            "totalCarrierFee": 0.0,
        }

    # -- WSGI --------------------------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        target = headers.get("x-amz-target", "")
        operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
        raw = read_body(environ)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        with self._lock:
            self.requests.append(
                FakeRequest(operation, headers, body if isinstance(body, dict) else {})
            )
            failure = self._failures.popleft() if self._failures else None
            latency = self.latency
            try:
                if failure is not None:
                    raise failure
                status, answer = 200, self._dispatch(environ, headers, operation, body)
            except AwsSmsError as exc:
                answer = {"__type": exc.name, "message": exc.message, **exc.fields}
                status = ERRORS.get(exc.name, 400)
        # Received and processed at once, answered late: a client that times out has still
        # been heard, as with the real service (and the record stays in its own test).
        if latency:
            time.sleep(latency)
        return _respond(start_response, status, answer)

    def _dispatch(
        self, environ: dict[str, Any], headers: dict[str, str], operation: str, body: Any
    ) -> dict[str, Any]:
        if environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO", "/") != "/":
            raise AwsSmsError("ValidationException", "Requests are POST /", Reason="OTHER")
        if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 "):
            raise AwsSmsError("AccessDeniedException", "Missing Authentication Token")
        if not environ.get("CONTENT_TYPE", "").startswith(CONTENT_TYPE) or not isinstance(
            body, dict
        ):
            raise AwsSmsError(
                "ValidationException", "Body is not AWS JSON 1.0", Reason="CANNOT_PARSE"
            )
        if operation == "SendTextMessage":
            return self._send_text_message(body)
        if operation == "PutMessageFeedback":
            return self._put_message_feedback(body)
        raise AwsSmsError(
            "ValidationException", f"Unknown operation {operation!r}", Reason="UNKNOWN_OPERATION"
        )

    def _send_text_message(self, body: dict[str, Any]) -> dict[str, Any]:
        _check(body, SEND_TEXT_MESSAGE, required=("DestinationPhoneNumber",))
        ttl = body.get("TimeToLive")
        if ttl is not None and (not isinstance(ttl, int) or not 5 <= ttl <= 259200):
            _invalid("TimeToLive", "must be between 5 and 259200")
        for name in ("DryRun", "MessageFeedbackEnabled"):
            if name in body and not isinstance(body[name], bool):
                _invalid(name, "must be a boolean")
        context = body.get("Context", {})
        _check_map("Context", context, 5, _CONTEXT_KEY, _CONTEXT_VALUE)
        countries = body.get("DestinationCountryParameters", {})
        _check_map(
            "DestinationCountryParameters",
            countries,
            10,
            Member(enum=_COUNTRY_PARAMETER_KEYS),
            _COUNTRY_PARAMETER,
        )
        configuration_set = body.get("ConfigurationSetName")
        if (
            configuration_set is not None
            and self.configuration_sets is not None
            and configuration_set not in self.configuration_sets
        ):
            raise AwsSmsError(
                "ResourceNotFoundException",
                f"Configuration set {configuration_set} not found",
                ResourceType="configuration-set",
                ResourceId=configuration_set,
            )
        origination = body.get("OriginationIdentity")
        if (
            origination is not None
            and self.origination_identities is not None
            and origination not in self.origination_identities
        ):
            raise AwsSmsError(
                "ResourceNotFoundException",
                f"Origination identity {origination} not found",
                ResourceType="phone-number",
                ResourceId=origination,
            )
        message_id = str(uuid.uuid4())
        if not body.get("DryRun"):
            self.messages[message_id] = FakeTextMessage(
                message_id=message_id,
                destination=body["DestinationPhoneNumber"],
                origination=origination,
                body=body.get("MessageBody"),
                message_type=body.get("MessageType"),
                configuration_set=configuration_set,
                context=dict(context),
                feedback_enabled=bool(body.get("MessageFeedbackEnabled")),
                time_to_live=ttl,
                sent_at_ms=int(time.time() * 1000),
            )
        return {"MessageId": message_id}

    def _put_message_feedback(self, body: dict[str, Any]) -> dict[str, Any]:
        _check(body, PUT_MESSAGE_FEEDBACK, required=tuple(PUT_MESSAGE_FEEDBACK))
        message_id, status = body["MessageId"], body["MessageFeedbackStatus"]
        message = self.messages.get(message_id)
        # A message sent without feedback enabled has no feedback record to update.
        if message is None or not message.feedback_enabled:
            raise AwsSmsError(
                "ResourceNotFoundException",
                f"Message {message_id} not found",
                ResourceType="message",
                ResourceId=message_id,
            )
        self.feedback.setdefault(message_id, []).append(status)
        return {"MessageId": message_id, "MessageFeedbackStatus": status}


def _invalid(name: str, problem: str, reason: str = "FIELD_VALIDATION_FAILED") -> NoReturn:
    raise AwsSmsError(
        "ValidationException",
        f"1 validation error detected: {name} {problem}",
        Reason=reason,
        Fields=[{"Name": name, "Message": problem}],
    )


def _check_string(name: str, value: Any, member: Member) -> None:
    if not isinstance(value, str):
        _invalid(name, "must be a string")
    if member.enum is not None and value not in member.enum:
        _invalid(name, f"must be one of {', '.join(sorted(member.enum))}")
    if member.min is not None and len(value) < member.min:
        _invalid(name, f"must have length at least {member.min}")
    if member.max is not None and len(value) > member.max:
        _invalid(name, f"must have length at most {member.max}")
    if member.pattern is not None and not re.fullmatch(member.pattern, value):
        _invalid(name, f"must match pattern {member.pattern}")


def _check(body: dict[str, Any], members: dict[str, Member], required: tuple[str, ...]) -> None:
    for name in required:
        if body.get(name) is None:
            _invalid(name, "is required", reason="MISSING_PARAMETER")
    for name, member in members.items():
        if body.get(name) is not None:
            _check_string(name, body[name], member)


def _check_map(name: str, value: Any, max_entries: int, key: Member, item: Member) -> None:
    if not isinstance(value, dict):
        _invalid(name, "must be a map")
    if len(value) > max_entries:
        _invalid(name, f"must have at most {max_entries} entries")
    for entry_key, entry_value in value.items():
        _check_string(f"{name} key", entry_key, key)
        _check_string(f"{name}.{entry_key}", entry_value, item)


def _respond(
    start_response: Callable[..., Any], status: int, payload: dict[str, Any]
) -> list[bytes]:
    data = json.dumps(payload).encode()
    reason = {200: "OK", 400: "Bad Request", 500: "Internal Server Error"}.get(status, "Error")
    start_response(
        f"{status} {reason}",
        [
            ("Content-Type", CONTENT_TYPE),
            ("Content-Length", str(len(data))),
            ("x-amzn-RequestId", str(uuid.uuid4())),
        ],
    )
    return [data]
