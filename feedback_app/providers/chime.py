"""Amazon Chime SDK Messaging backend (``chime``): chat messages to a channel, statuses by polling.

Chime has no delivery receipts and no conversion API. What it tells is the processing status of a
message: ``SENT`` at once for a channel without a channel flow, ``PENDING`` while a flow's
processor has not answered, then ``SENT``, ``DENIED`` or ``FAILED``; open messages are polled with
``get_channel_message_status``. Conversions are recorded locally only.

Chime does not keep a message its processor denied ("This API does not return statuses for denied
messages, because we don't store them"), so a pending message may answer ``NotFoundException``
instead of ``DENIED``: both end as ``rejected``.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from django.core.checks import CheckMessage, Warning

from ..states import Channel, Delivery
from .aws import classify_error, make_client
from .base import PermanentError, Provider, SendResult, StatusUpdate

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from ..models import Message

#: Chime's ``ChannelMessageStatus`` -> normalized delivery status. A value not listed (or none)
#: leaves the message queued, so polling asks again until ``POLL_MAX_AGE``.
STATUSES: dict[str, str] = {
    #: Processed (or no channel flow): the message is in the channel for its members to read.
    "SENT": Delivery.DELIVERED,
    #: A channel flow's processor has not called back yet.
    "PENDING": Delivery.QUEUED,
    #: The processor could not be reached and the flow aborts on failure.
    "FAILED": Delivery.FAILED,
    #: The processor refused the message.
    "DENIED": Delivery.REJECTED,
}

#: ``provider_status`` of a pending message Chime no longer has: denied by the channel flow.
NOT_FOUND = "NOT_FOUND"

#: ``Message.metadata`` keys that let a still-pending message be polled: Chime asks for the
#: channel (and SubChannel) of a message, which is otherwise stored only hashed and masked.
CHANNEL_ARN_KEY = "chime_channel_arn"
SUB_CHANNEL_ID_KEY = "chime_sub_channel_id"

#: Per-call options of ``send`` for optional SendChannelMessage members -> the member each sets.
#: ``chime_bearer`` (the required ``ChimeBearer``) is the one other option.
OPTIONAL_MEMBERS: dict[str, str] = {
    "chime_metadata": "Metadata",
    "chime_content_type": "ContentType",
    "chime_sub_channel_id": "SubChannelId",
}


class ChimeProvider(Provider):
    """Sends with ``send_channel_message``; polls ``get_channel_message_status`` while PENDING."""

    reports = frozenset()
    channels = frozenset({Channel.CHAT})
    poll_statuses = frozenset({Delivery.QUEUED})

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        if config.get("CHIME_BEARER"):
            return []
        return [
            Warning(
                f"Provider {key!r} has no CHIME_BEARER: every send must pass chime_bearer.",
                hint="Set CHIME_BEARER to the AppInstanceUser or AppInstanceBot ARN that sends.",
                id="feedback_app.W104",
            )
        ]

    @cached_property
    def client(self) -> BaseClient:
        """The ``chime-sdk-messaging`` client, built on first use (once per process)."""
        return make_client("chime-sdk-messaging", self.config)

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
        """Post ``body`` to the channel ARN ``to`` as the bearer (an AppInstanceUser or Bot ARN).

        The bearer is the ``chime_bearer`` option, else ``sender``, else the ``CHIME_BEARER``
        setting. ``chime_metadata``, ``chime_content_type`` and ``chime_sub_channel_id`` set the
        optional members of the same names.
        """
        if channel != Channel.CHAT:
            raise PermanentError(
                f"Chime sends to chat channels, not {channel!r}", code="unsupported_channel"
            )
        unknown = options.keys() - {"chime_bearer", *OPTIONAL_MEMBERS}
        if unknown:
            raise TypeError(f"unknown Chime options: {', '.join(sorted(unknown))}")
        bearer = options.get("chime_bearer") or sender or self.config.get("CHIME_BEARER")
        if not bearer:
            raise PermanentError(
                "no ChimeBearer: pass chime_bearer= or set CHIME_BEARER", code="missing_bearer"
            )
        params: dict[str, Any] = {
            "ChannelArn": to,
            "Content": body,
            "Type": "STANDARD",
            "Persistence": self.config.get("PERSISTENCE", "PERSISTENT"),
            # Our id rather than the SDK's random default: the Chime request is traceable to our
            # message, and a repeat of this send is deduplicated by Chime.
            "ClientRequestToken": uuid.UUID(message_id).hex,
            "ChimeBearer": bearer,
        }
        params.update(
            (member, options[name])
            for name, member in OPTIONAL_MEMBERS.items()
            if options.get(name)
        )
        response = self._call("send_channel_message", **params)
        value = response.get("Status", {}).get("Value", "")
        delivery_status = STATUSES.get(value, Delivery.QUEUED)
        metadata: dict[str, Any] = {}
        # The channel to poll, kept for the messages sent PENDING only: the recipient of a chat
        # message is its channel, otherwise stored only hashed and masked.
        if delivery_status in self.poll_statuses:
            metadata[CHANNEL_ARN_KEY] = response.get("ChannelArn", to)
            if response.get("SubChannelId"):
                metadata[SUB_CHANNEL_ID_KEY] = response["SubChannelId"]
        return SendResult(
            provider_message_id=response["MessageId"],
            delivery_status=delivery_status,
            provider_status=value,
            sender=bearer,
            metadata=metadata,
        )

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """The processing status of a pending message; None when its channel was not kept."""
        channel_arn = message.metadata.get(CHANNEL_ARN_KEY)
        # Only the sender may read a message's status: the bearer that sent it.
        bearer = message.sender or self.config.get("CHIME_BEARER")
        if not channel_arn or not bearer:
            return None
        params = {
            "ChannelArn": channel_arn,
            "MessageId": message.provider_message_id,
            "ChimeBearer": bearer,
        }
        if message.metadata.get(SUB_CHANNEL_ID_KEY):
            params["SubChannelId"] = message.metadata[SUB_CHANNEL_ID_KEY]
        try:
            response = self._call("get_channel_message_status", **params)
        except PermanentError as exc:
            # Known pending (the send answered PENDING): gone means the processor denied it.
            if exc.code == "NotFoundException" and message.provider_status == "PENDING":
                return StatusUpdate(
                    provider_message_id=message.provider_message_id,
                    delivery_status=Delivery.REJECTED,
                    provider_status=NOT_FOUND,
                    detail={
                        "status_detail": "not found: denied by the channel flow (Chime keeps no "
                        "status for denied messages)",
                        "error_code": exc.code,
                    },
                )
            raise
        status = response.get("Status", {})
        value = status.get("Value", "")
        return StatusUpdate(
            provider_message_id=message.provider_message_id,
            delivery_status=STATUSES.get(value, Delivery.QUEUED),
            provider_status=value,
            detail={"status_detail": status["Detail"]} if status.get("Detail") else {},
        )

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return getattr(self.client, operation)(**params)
        except (ClientError, BotoCoreError) as exc:
            raise classify_error(exc) from exc
