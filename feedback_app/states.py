"""The state machine: feedback (conversion) states, delivery statuses and their ranks.

Provider vocabularies are translated into these in each provider module; nothing else here
knows a provider.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class Feedback(models.TextChoices):
    """Whether the recipient used the message (conversion)."""

    #: Sent, not yet confirmed; the feedback window is open.
    PENDING = "pending", _("pending")
    #: The recipient used it (code entered, link clicked). Final.
    CONFIRMED = "confirmed", _("confirmed")
    #: The host app said the recipient did not use it.
    FAILED = "failed", _("failed")
    #: The feedback window closed without a confirmation.
    EXPIRED = "expired", _("expired")
    #: Another message of its verification (a resend, or the message it resent) was confirmed:
    #: not a conversion, not a failure to deliver. Final.
    SUPERSEDED = "superseded", _("superseded")


#: target state -> the states it may be entered from. Confirming is allowed after a failure or
#: expiry (a late conversion is still a conversion, counted as late); ``confirmed`` is final,
#: and so is ``superseded``: its verification already converted through another message.
TRANSITIONS: dict[str, frozenset[str]] = {
    Feedback.CONFIRMED: frozenset({Feedback.PENDING, Feedback.EXPIRED, Feedback.FAILED}),
    Feedback.FAILED: frozenset({Feedback.PENDING}),
    Feedback.EXPIRED: frozenset({Feedback.PENDING}),
    Feedback.SUPERSEDED: frozenset({Feedback.PENDING, Feedback.EXPIRED}),
}

#: Entering confirmed from one of these makes the conversion late.
LATE_FROM: frozenset[str] = frozenset({Feedback.EXPIRED, Feedback.FAILED})


def can_transition(current: str, target: str) -> bool:
    return current in TRANSITIONS.get(target, frozenset())


class Delivery(models.TextChoices):
    """Normalized delivery status, the same for every provider."""

    #: Accepted by the provider, not yet handed to a carrier.
    QUEUED = "queued", _("queued")
    #: Handed to the carrier (or processed, for chat).
    SENT = "sent", _("sent")
    #: The provider will not tell more (no receipt within its own limit).
    UNKNOWN = "unknown", _("unknown")
    #: The carrier said it did not reach the handset.
    UNDELIVERED = "undelivered", _("undelivered")
    #: The provider could not send it.
    FAILED = "failed", _("failed")
    #: Refused before sending (blocked, denied, opted out).
    REJECTED = "rejected", _("rejected")
    #: Confirmed on the handset (or delivered to the channel).
    DELIVERED = "delivered", _("delivered")


#: Rank of each delivery status. An update applies only when its rank is higher than the current
#: one, so callbacks that arrive out of order never move a message backwards.
DELIVERY_RANK: dict[str, int] = {
    Delivery.QUEUED: 10,
    Delivery.SENT: 20,
    Delivery.UNKNOWN: 30,
    Delivery.UNDELIVERED: 40,
    Delivery.FAILED: 40,
    Delivery.REJECTED: 40,
    Delivery.DELIVERED: 50,
}

#: Delivery statuses counted as "delivered OK" in reports (as Twilio's OTP report counts them).
DELIVERY_OK: frozenset[str] = frozenset({Delivery.DELIVERED, Delivery.SENT, Delivery.UNKNOWN})


def statuses_below(status: str) -> list[str]:
    """The statuses an update to ``status`` may replace."""
    rank = DELIVERY_RANK[status]
    return [s for s, r in DELIVERY_RANK.items() if r < rank]


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    MMS = "mms", _("MMS")
    WHATSAPP = "whatsapp", _("WhatsApp")
    VOICE = "voice", _("voice")
    CHAT = "chat", _("chat")


#: Channels whose recipient is a phone number; for the others it is an opaque address.
PHONE_CHANNELS: frozenset[str] = frozenset(
    {Channel.SMS, Channel.MMS, Channel.WHATSAPP, Channel.VOICE}
)


class EventKind(models.TextChoices):
    FEEDBACK = "feedback", _("feedback")
    DELIVERY = "delivery", _("delivery")
    PROVIDER = "provider", _("provider")


class Source(models.TextChoices):
    """Who caused an event."""

    PYTHON = "python", _("Python API")
    API = "api", _("REST API")
    ADMIN = "admin", _("admin")
    WEBHOOK = "webhook", _("webhook")
    SWEEP = "sweep", _("sweep")
    POLL = "poll", _("poll")
    COMMAND = "command", _("management command")


class CallState(models.TextChoices):
    """Outbox state of one provider call."""

    #: Waiting for a worker (first try or after a retryable error).
    PENDING = "pending", _("pending")
    #: Claimed by a worker until ``locked_until``.
    IN_FLIGHT = "in_flight", _("in flight")
    SUCCEEDED = "succeeded", _("succeeded")
    #: The provider refused it (permanent error); not retried.
    FAILED = "failed", _("failed")
    #: Still failing after the retry policy's max age or attempts.
    GAVE_UP = "gave_up", _("gave up")
    #: A newer report for the same message made this one moot.
    SUPERSEDED = "superseded", _("superseded")


class Operation(models.TextChoices):
    #: Report the conversion outcome (payload: {"outcome": "confirmed" | "failed"}).
    REPORT_FEEDBACK = "report_feedback", _("report feedback")
