"""AWS End User Messaging SMS backend (``aws_sms``): boto3 ``pinpoint-sms-voice-v2``.

Sends with ``send_text_message`` and message feedback enabled, and reports conversions with
``put_message_feedback``: ``RECEIVED`` when the recipient used the message, ``FAILED`` when it was
failed or expired. AWS sets a record it was not told about to FAILED itself after one hour, but
only an explicit update reaches its CloudWatch metrics, so the expiry sweep sends FAILED too.
Delivery statuses arrive through the configuration set's SNS event destination
(``webhooks/sns.py``).
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import DEFAULT_CACHE_ALIAS
from django.core.checks import CheckMessage, Error, Warning

from ..states import Channel, Delivery
from .aws import RETRYABLE_CODES, classify_error, make_client
from .base import PermanentError, Provider, SendResult

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from ..models import Message

#: Our outcome -> ``MessageFeedbackStatus``.
FEEDBACK_STATUSES: dict[str, str] = {"confirmed": "RECEIVED", "failed": "FAILED"}

#: The key of our message's public id in ``Context``; AWS echoes the map in every event record.
CONTEXT_KEY = "feedback_app_id"

#: SendTextMessage members a caller may pass to ``send`` as options, as AWS names them.
#: ``ConfigurationSetName`` and ``MessageType`` override the settings for one message;
#: ``Context`` entries are added to ours.
OPTIONS: frozenset[str] = frozenset(
    {
        "ConfigurationSetName",
        "Context",
        "DestinationCountryParameters",
        "DryRun",
        "Keyword",
        "MaxPrice",
        "MessageType",
        "ProtectConfigurationId",
        "TimeToLive",
    }
)

#: Refusals that waiting will not change. ``ServiceQuotaExceededException`` is among them
#: although it is a limit: its reasons (monthly spend limit, account quotas) are lifted by a
#: person raising the limit, not within the outbox's retry window; retrying would only add load.
PERMANENT_CODES: frozenset[str] = frozenset(
    {
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "ConflictException",
        "ServiceQuotaExceededException",
    }
)


class AwsSmsProvider(Provider):
    """``send_text_message`` with feedback enabled; ``put_message_feedback`` RECEIVED/FAILED.

    Settings (besides those of ``providers.aws.make_client``): ``CONFIGURATION_SET`` (name or
    ARN; needed for event destinations) and ``ORIGINATION_IDENTITY`` (phone number, sender id,
    pool; ``sender`` overrides it per message).
    """

    reports = frozenset(FEEDBACK_STATUSES)
    channels = frozenset({Channel.SMS})

    def superseded_outcome(self, message: Message) -> str | None:
        # AWS: FAILED means the recipient did not receive the message. A resend converted, so
        # this one was not used; it was not received unless its receipt said delivered, and a
        # received message is not FAILED (docs/providers/aws_sms.md).
        return None if message.delivery_status == Delivery.DELIVERED else "failed"

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        messages: list[CheckMessage] = _check_dev_certificate_urls(key, config)
        if not config.get("CONFIGURATION_SET"):
            # AWS publishes SMS events only to a configuration set's event destinations.
            messages.append(
                Warning(
                    f"Provider {key!r} has no CONFIGURATION_SET: AWS emits no delivery events "
                    "for its messages, so their delivery status stays 'queued'.",
                    hint="Set CONFIGURATION_SET to a configuration set with an SNS event "
                    "destination (or pass ConfigurationSetName with every send); see "
                    "docs/providers/aws_sms.md, 'Delivery status'.",
                    id="feedback_app.W106",
                )
            )
        missing = [
            name for name in ("WEBHOOK_BASIC_AUTH", "SNS_TOPIC_ARNS") if not config.get(name)
        ]
        if missing:
            messages.append(
                Warning(
                    f"Provider {key!r} has no {' and no '.join(missing)}: its SNS webhook refuses "
                    "every notification, so no delivery status arrives.",
                    hint="See docs/providers/aws_sms.md, 'The SNS webhook'.",
                    id="feedback_app.W103",
                )
            )
        elif _default_cache_is_dummy():
            messages.append(
                Warning(
                    f"Provider {key!r}: the default cache is DummyCache, so the SNS webhook "
                    "cannot remember the notifications it handled and handles each SNS retry "
                    "again.",
                    hint="Configure a real cache (Redis, Memcached, the database) as 'default'; "
                    "see docs/providers/aws_sms.md, 'Events'.",
                    id="feedback_app.W105",
                )
            )
        return messages

    @cached_property
    def client(self) -> BaseClient:
        """The ``pinpoint-sms-voice-v2`` client, built on first use (once per process)."""
        return make_client("pinpoint-sms-voice-v2", self.config)

    def send(
        self,
        *,
        to: str,
        body: str,
        sender: str | None,
        channel: str,
        message_id: str,
        **options: Any,
    ) -> SendResult:
        """Send ``body`` to the E.164 number ``to`` as a transactional text message.

        ``options`` are SendTextMessage members (``TimeToLive=300``, ``MaxPrice="0.05"``, ...);
        see ``OPTIONS``.
        """
        if channel != Channel.SMS:
            raise PermanentError(
                f"AWS End User Messaging sends SMS, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - OPTIONS
        if unknown:
            raise TypeError(f"unknown SendTextMessage options: {', '.join(sorted(unknown))}")
        params: dict[str, Any] = {
            "MessageType": "TRANSACTIONAL",
            **options,
            "DestinationPhoneNumber": to,
            "MessageBody": body,
            "MessageFeedbackEnabled": True,
            # Echoed in every event record: ties AWS's events to our message even before the
            # send has returned its MessageId to us.
            "Context": {**options.get("Context", {}), CONTEXT_KEY: message_id},
        }
        origination = sender or self.config.get("ORIGINATION_IDENTITY")
        if origination:
            params["OriginationIdentity"] = origination
        configuration_set = options.get("ConfigurationSetName") or self.config.get(
            "CONFIGURATION_SET"
        )
        if configuration_set:
            params["ConfigurationSetName"] = configuration_set
        response = self._call("send_text_message", **params)
        return SendResult(
            provider_message_id=response["MessageId"],
            delivery_status=Delivery.QUEUED,
            sender=origination or "",
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Set the message's feedback record to RECEIVED (confirmed) or FAILED (failed/expired).

        PutMessageFeedback takes no idempotency token and needs none: it sets a value, so a
        repeated call leaves the record as one call would.
        """
        status = FEEDBACK_STATUSES.get(outcome)
        if status is None:
            raise PermanentError(f"unknown outcome {outcome!r}", code="invalid_outcome")
        self._call(
            "put_message_feedback",
            MessageId=provider_message_id,
            MessageFeedbackStatus=status,
        )

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**params)
        except Exception as exc:
            raise classify_error(exc, RETRYABLE_CODES, PERMANENT_CODES) from exc


def _default_cache_is_dummy() -> bool:
    backend = settings.CACHES.get(DEFAULT_CACHE_ALIAS, {}).get("BACKEND", "")
    return backend == "django.core.cache.backends.dummy.DummyCache"


def _check_dev_certificate_urls(key: str, config: dict[str, Any]) -> list[CheckMessage]:
    """``SNS_DEV_CERTIFICATE_URLS`` trusts a local fake's certificate: development only."""
    prefixes = config.get("SNS_DEV_CERTIFICATE_URLS")
    if not prefixes:
        return []
    name = f"FEEDBACK_APP['PROVIDERS'][{key!r}]['SNS_DEV_CERTIFICATE_URLS']"
    if not settings.DEBUG:
        return [
            Error(
                f"{name} is set while DEBUG is off: it makes the SNS webhook trust certificates "
                "that are not Amazon's.",
                hint="It is for a local fake (make demo); remove it outside development.",
                id="feedback_app.E105",
            )
        ]
    if isinstance(prefixes, str):
        prefixes = [prefixes]
    bad = [
        prefix
        for prefix in prefixes
        if not isinstance(prefix, str)
        or not prefix.startswith(("http://", "https://"))
        or not prefix.endswith("/")
    ]
    if bad:
        return [
            Error(
                f"{name} has values that are not URL prefixes ending in '/': {bad!r}.",
                hint='For example ["http://127.0.0.1:8765/sns/"].',
                id="feedback_app.E106",
            )
        ]
    return []
