"""Amazon SNS webhook for AWS End User Messaging SMS events (configuration set -> event
destination -> SNS topic -> HTTPS subscription to this view).

Four checks, all required: HTTP basic auth with the secret in the subscription URL
(``WEBHOOK_BASIC_AUTH``), the SNS signature (``sns_signature``), the topic allow-list
(``SNS_TOPIC_ARNS``), and the signed ``Timestamp``, no older than ``SNS_MAX_AGE`` (a replay).
A request failing any of them is refused and changes nothing.

An event may arrive before the row of the message it is about is committed (AWS can publish
while ``send`` is still recording the message). Such an event names our message id in its
``context``; while it is recent the webhook answers 503, so SNS delivers it again.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from ..conf import app_settings
from ..models import Message
from ..providers.base import StatusUpdate
from ..states import Delivery
from . import subscriptions
from .base import WebhookError, WebhookView, apply_update, find_message, json_body

logger = logging.getLogger(__name__)

#: ``eventType`` of a text message event -> normalized delivery status. Other event types
#: (voice, media, RCS) are acknowledged and ignored.
EVENT_STATUSES: dict[str, str] = {
    "TEXT_PENDING": Delivery.QUEUED,
    "TEXT_QUEUED": Delivery.QUEUED,
    "TEXT_SENT": Delivery.SENT,
    # Accepted by the carrier; AWS says the two are used interchangeably depending on the
    # destination country, so both count as delivered.
    "TEXT_SUCCESSFUL": Delivery.DELIVERED,
    "TEXT_DELIVERED": Delivery.DELIVERED,
    "TEXT_BLOCKED": Delivery.REJECTED,
    "TEXT_SPAM": Delivery.REJECTED,
    "TEXT_CARRIER_BLOCKED": Delivery.REJECTED,
    "TEXT_PROTECT_BLOCKED": Delivery.REJECTED,
    "TEXT_INVALID": Delivery.REJECTED,
    "TEXT_INVALID_MESSAGE": Delivery.REJECTED,
    "TEXT_UNREACHABLE": Delivery.UNDELIVERED,
    "TEXT_CARRIER_UNREACHABLE": Delivery.UNDELIVERED,
    "TEXT_TTL_EXPIRED": Delivery.UNDELIVERED,
    # No final carrier event within 72 hours.
    "TEXT_UNKNOWN": Delivery.UNKNOWN,
}

#: ``eventType`` -> the event types it refines at the same delivery status. AWS may send
#: ``TEXT_SUCCESSFUL`` (accepted by the carrier, often ``isFinal: false``) and then
#: ``TEXT_DELIVERED`` (``isFinal: true``): the second keeps the status and records its facts.
SUPERSEDES: dict[str, frozenset[str]] = {"TEXT_DELIVERED": frozenset({"TEXT_SUCCESSFUL"})}

#: Event record fields kept in the delivery event's detail. Not the phone numbers.
DETAIL_FIELDS = (
    "eventType",
    "messageStatus",
    "messageStatusDescription",
    "isFinal",
    "isoCountryCode",
    "carrierName",
)

#: Seconds an SNS MessageId is remembered. SNS retries a delivery with the same MessageId for
#: as long as its delivery policy says (an hour at most for HTTP/S); a day covers any policy.
DEDUPE_SECONDS = 24 * 3600

#: Seconds after an event during which an event for a message we sent but have no row for is
#: answered 503: long enough for any ``send`` to commit, short enough that an event for a
#: message rolled back (or purged) is not retried through SNS's whole delivery policy.
UNCOMMITTED_GRACE = 15 * 60

#: Seconds a ``Timestamp`` may be off beyond ``SNS_MAX_AGE`` (or ahead of our clock): clocks
#: of SNS and of this host drift apart a little.
CLOCK_SKEW = 300

CHALLENGE = {"WWW-Authenticate": 'Basic realm="feedback_app"'}


class SnsWebhookView(WebhookView):
    """Receives SNS deliveries of SMS event records; see the module docstring.

    Provider settings: ``WEBHOOK_BASIC_AUTH`` ("user:password", also in the subscription URL),
    ``SNS_TOPIC_ARNS`` (topics accepted; empty refuses all), ``SNS_CONFIRM_SUBSCRIPTIONS``
    (confirm a subscription by fetching its SubscribeURL; otherwise it is recorded for the admin
    and logged) and, with ``DEBUG`` only, ``SNS_DEV_CERTIFICATE_URLS`` (a local fake's
    certificate URL prefixes).
    """

    default_provider = "aws_sms"
    #: The verified SNS message (the parsed body), set by ``validate_request``.
    envelope: dict[str, Any]
    #: Cache key of this SNS MessageId, marked seen once the request was handled.
    seen_key: str | None = None
    #: The message the event is about, once looked up (``awaits_commit`` needs it first).
    message: Message | None = None

    def post(self, request: HttpRequest, provider: str | None = None) -> HttpResponse:
        response = super().post(request, provider)
        # Marked only after it was handled: a request that fails, or a worker killed midway,
        # leaves no mark, and SNS's retry of the same MessageId is handled again.
        if self.seen_key is not None and response.status_code < 300:
            cache.set(self.seen_key, 1, timeout=DEDUPE_SECONDS)
        return response

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        # Imported here: cryptography comes with the "aws" extra, and the webhook URLs must
        # load in projects that use other providers only.
        from . import sns_signature

        check_basic_auth(request, config.get("WEBHOOK_BASIC_AUTH"))
        if request.headers.get("x-amz-sns-rawdelivery", "").lower() == "true":
            raise WebhookError(400, "raw message delivery is unsigned: turn it off")
        envelope = json_body(request)
        if not isinstance(envelope, dict) or "Signature" not in envelope:
            raise WebhookError(403, "unsigned message")
        topics = allowed_topics(config.get("SNS_TOPIC_ARNS"))
        if not topics:
            logger.error(
                "feedback_app: %s SNS_TOPIC_ARNS is empty; every topic is refused", provider
            )
        topic = envelope.get("TopicArn")
        if not isinstance(topic, str) or topic not in topics:
            raise WebhookError(
                403, "topic not accepted", detail=f"topic {topic!r} is not in SNS_TOPIC_ARNS"
            )
        # What failed is logged, not answered: it names certificate hosts and network errors.
        try:
            sns_signature.verify(envelope, dev_certificate_urls(provider, config))
        except sns_signature.InvalidSignature as exc:
            raise WebhookError(403, "invalid SNS signature", detail=str(exc)) from exc
        except sns_signature.CertificateUnavailable as exc:
            raise WebhookError(
                503, "signing certificate unavailable; try again later", detail=str(exc)
            ) from exc
        check_timestamp(envelope, app_settings.SNS_MAX_AGE)
        self.envelope = envelope

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        envelope = self.envelope
        kind = envelope["Type"]
        update = parse_event(envelope["Message"]) if kind == "Notification" else None
        if update is not None:
            # Looked up once, for the check below and for ``apply``.
            self.message = find_message(provider, update)
        # Before the MessageId counts as seen: SNS's next delivery must be handled.
        if update is not None and awaits_commit(update, envelope, self.message):
            raise WebhookError(
                503, f"message {update.message_id} is not recorded yet; SNS will deliver it again"
            )
        if self._seen_before(provider, envelope["MessageId"]):
            logger.info("feedback_app: SNS message %s already handled", envelope["MessageId"])
            return []
        if kind == "SubscriptionConfirmation":
            confirm_subscription(provider, envelope, bool(config.get("SNS_CONFIRM_SUBSCRIPTIONS")))
            return []
        if kind == "UnsubscribeConfirmation":
            logger.warning(
                "feedback_app: %s unsubscribed from %s; events stop until it is subscribed again",
                provider,
                envelope["TopicArn"],
            )
            return []
        if update is None:
            return []
        return [replace(update, detail={**update.detail, "sns_message_id": envelope["MessageId"]})]

    def apply(self, provider: str, update: StatusUpdate) -> None:
        if self.message is None:
            logger.info("feedback_app: %s webhook for an unknown message, ignored", provider)
            return
        apply_update(provider, update, self.message)

    # Deduplication on the SNS MessageId, in the cache rather than in MessageEvent rows: a
    # duplicate is already harmless to the state (record_delivery applies only a status that
    # ranks higher, or a provider status that refines the current one, and a repeat does
    # neither), so the check only saves the repeated work, and a cache lookup is one round
    # trip where a lookup in event details would be an unindexed JSON query. Two copies
    # handled at once are both applied, to the same effect. With a per-process cache
    # (LocMemCache) duplicates reaching another process are applied again, likewise; with
    # DummyCache nothing is remembered (system check W105).

    def _seen_before(self, provider: str, sns_message_id: str) -> bool:
        """Whether this SNS message was handled before; if not, it is marked once handled."""
        key = f"feedback_app:sns:{provider}:{sns_message_id}"
        if cache.get(key) is not None:
            return True
        self.seen_key = key
        return False


def allowed_topics(setting: object) -> frozenset[str]:
    """The topic ARNs of ``SNS_TOPIC_ARNS``, matched exactly.

    A lone string is taken as one ARN: ``in`` on the string itself would match any substring.
    """
    if isinstance(setting, str):
        return frozenset({setting})
    return frozenset(arn for arn in setting or () if isinstance(arn, str))


def check_basic_auth(request: HttpRequest, expected: str | None) -> None:
    """Raise ``WebhookError`` unless the request carries basic auth credentials ``expected``.

    A missing or wrong password answers 401 with a challenge: SNS sends the credentials of the
    subscription URL only after being challenged.
    """
    if not expected:
        logger.error("feedback_app: WEBHOOK_BASIC_AUTH is not set; the SNS webhook refuses all")
        raise WebhookError(403, "forbidden", detail="WEBHOOK_BASIC_AUTH is not set")
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    given = b""
    if scheme.lower() == "basic":
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            given = b""
    if not hmac.compare_digest(given, expected.encode()):
        raise WebhookError(401, "missing or wrong basic auth credentials", CHALLENGE)


def check_timestamp(envelope: dict[str, Any], max_age: int) -> None:
    """Raise ``WebhookError`` 403 unless the (signed) ``Timestamp`` is at most ``max_age``
    seconds old and not in the future, give or take ``CLOCK_SKEW``.

    SNS stops retrying an HTTP/S delivery within an hour at most (its hard limit), so an older
    message, however well signed, is a recorded one being replayed.
    """
    value = envelope.get("Timestamp")
    at = _from_iso(value)
    if at is None:
        raise WebhookError(403, "no valid Timestamp", detail=f"Timestamp {value!r}")
    age = (timezone.now() - at).total_seconds()
    if age > max_age + CLOCK_SKEW:
        raise WebhookError(
            403,
            "message too old",
            detail=f"Timestamp {value} is {age:.0f} s old; SNS_MAX_AGE is {max_age}",
        )
    if age < -CLOCK_SKEW:
        raise WebhookError(
            403, "message from the future", detail=f"Timestamp {value} is {-age:.0f} s ahead"
        )


def confirm_subscription(provider: str, envelope: dict[str, Any], confirm: bool) -> None:
    """Record a (verified) subscription request, and confirm it when ``confirm`` says so;
    otherwise log its SubscribeURL, for a person to confirm it (the admin has an action)."""
    try:
        subscriptions.check_subscribe_url(envelope.get("SubscribeURL"), envelope["TopicArn"])
    except subscriptions.SubscriptionError as exc:
        raise WebhookError(403, "SubscribeURL refused", detail=exc.reason) from exc
    subscription = subscriptions.record(provider, envelope)
    if not confirm:
        logger.warning(
            "feedback_app: SNS subscription to %s awaits confirmation: open %s, or confirm it in "
            "the admin (SNS subscriptions), or set SNS_CONFIRM_SUBSCRIPTIONS",
            envelope["TopicArn"],
            envelope["SubscribeURL"],
        )
        return
    try:
        subscriptions.confirm(subscription)
    except subscriptions.SubscriptionError as exc:
        # SNS sends the confirmation request again; the subscription stays pending until then.
        raise WebhookError(
            503, "could not confirm the subscription; try again later", detail=exc.reason
        ) from exc


def dev_certificate_urls(provider: str, config: dict[str, Any]) -> list[str]:
    """``SNS_DEV_CERTIFICATE_URLS`` while ``DEBUG`` is on; ignored (and said so) otherwise."""
    prefixes = config.get("SNS_DEV_CERTIFICATE_URLS") or []
    if not prefixes:
        return []
    if not settings.DEBUG:
        logger.error(
            "feedback_app: %s SNS_DEV_CERTIFICATE_URLS is ignored: it is for development, with "
            "DEBUG on",
            provider,
        )
        return []
    return [prefixes] if isinstance(prefixes, str) else list(prefixes)


def awaits_commit(update: StatusUpdate, envelope: dict[str, Any], found: Message | None) -> bool:
    """True for a recent event about a message we sent (its ``context`` names our id) whose row
    is not there yet (``found``: what ``find_message`` found for it): ``send`` is still
    recording it. Such an event is asked for again."""
    if found is not None or not update.message_id:
        return False
    at = update.at or _from_iso(envelope.get("Timestamp"))
    if at is None or abs((timezone.now() - at).total_seconds()) > UNCOMMITTED_GRACE:
        return False
    # A row under another provider key is not one still being written.
    return not Message.objects.filter(pk=update.message_id).exists()


def parse_event(record_json: str) -> StatusUpdate | None:
    """The status update in an SMS event record (the SNS ``Message``), or None to ignore it."""
    try:
        record = json.loads(record_json)
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):
        logger.warning("feedback_app: SNS message is not an SMS event record, ignored")
        return None
    event_type = record.get("eventType")
    message_id = record.get("messageId")
    status = EVENT_STATUSES.get(event_type)
    if status is None or not isinstance(message_id, str) or not message_id:
        logger.info("feedback_app: SNS event %r ignored", event_type)
        return None
    return StatusUpdate(
        provider_message_id=message_id,
        delivery_status=status,
        provider_status=event_type,
        at=_from_milliseconds(record.get("eventTimestamp")),
        detail={name: record[name] for name in DETAIL_FIELDS if name in record},
        supersedes=SUPERSEDES.get(event_type, frozenset()),
        message_id=_our_id(record.get("context")),
    )


def _our_id(context: object) -> str | None:
    """Our public message id from the record's ``context`` (``send`` put it there), if any."""
    from ..providers.aws_sms import CONTEXT_KEY

    value = context.get(CONTEXT_KEY) if isinstance(context, dict) else None
    if not isinstance(value, str):
        return None
    try:
        parsed = uuid.UUID(value)
    except ValueError:
        return None
    # The form ``send`` wrote, nothing looser.
    return value if str(parsed) == value else None


def _from_iso(value: object) -> datetime | None:
    """An SNS ``Timestamp`` ("2026-01-01T00:00:00.123Z")."""
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _from_milliseconds(value: object) -> datetime | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return datetime.fromtimestamp(value / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None
