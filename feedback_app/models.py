"""Message, its append-only event history, and the outbox of calls to providers."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .states import CallState, Channel, Delivery, EventKind, Feedback, Operation, Source


class Message(models.Model):
    """One message sent through a provider. Never holds the body or the clear recipient."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.CharField(_("provider"), max_length=32)
    provider_message_id = models.CharField(_("provider message id"), max_length=128)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.SMS
    )
    purpose = models.SlugField(_("purpose"), max_length=64, default="otp")
    sender = models.CharField(_("sender"), max_length=256, blank=True, default="")
    recipient_hash = models.CharField(_("recipient hash"), max_length=64, db_index=True)
    recipient_masked = models.CharField(_("recipient"), max_length=64)
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    #: Country calling code + national destination code, never precise enough to name the
    #: number beside the masked form (``recipients.destination_prefix``); "" for chat. A
    #: database default too, so bulk writers that predate it (raw INSERTs) keep working.
    recipient_prefix = models.CharField(
        _("recipient prefix"), max_length=16, blank=True, default="", db_default=""
    )
    delivery_status = models.CharField(
        _("delivery status"), max_length=16, choices=Delivery.choices, default=Delivery.QUEUED
    )
    provider_status = models.CharField(_("provider status"), max_length=64, blank=True, default="")
    feedback = models.CharField(
        _("feedback"), max_length=16, choices=Feedback.choices, default=Feedback.PENDING
    )
    feedback_requested = models.BooleanField(_("feedback requested"), default=True)
    confirmed_late = models.BooleanField(_("confirmed late"), default=False)
    sent_at = models.DateTimeField(_("sent at"))
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    feedback_deadline = models.DateTimeField(_("feedback deadline"))
    metadata = models.JSONField(_("metadata"), default=dict, blank=True)
    #: When polling last asked the provider about this message. Polling asks the least recently
    #: asked first, so messages that never settle cannot starve newer ones.
    polled_at = models.DateTimeField(_("polled at"), null=True, blank=True)
    #: The attempt this message belongs to (``send(..., verification=key)``), with its resends.
    verification = models.ForeignKey(
        "Verification",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="messages",
        verbose_name=_("verification"),
    )
    #: A later message of its verification; the first one carries the verification's counts in
    #: the rollups.
    resend = models.BooleanField(_("resend"), default=False)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-sent_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "provider_message_id"], name="feedback_app_message_provider_id"
            ),
        ]
        indexes = [
            models.Index(fields=["-sent_at"], name="feedback_app_msg_sent"),
            models.Index(fields=["provider", "sent_at"], name="feedback_app_msg_prov_sent"),
            models.Index(fields=["country", "sent_at"], name="feedback_app_msg_country_sent"),
            # The guard's automatic blocks compare a prefix's recent sends with its baseline.
            models.Index(
                fields=["recipient_prefix", "sent_at"], name="feedback_app_msg_prefix_sent"
            ),
            # The rollup refresh and the dashboard find the hours changed since the watermark.
            models.Index(fields=["updated_at"], name="feedback_app_msg_updated"),
            # The expiry sweep reads only open messages; a partial index stays small.
            models.Index(
                fields=["feedback_deadline"],
                condition=Q(feedback="pending"),
                name="feedback_app_msg_open_deadline",
            ),
        ]
        permissions = [
            ("confirm_message", _("Can confirm or fail messages")),
            ("send_message", _("Can send messages through a provider")),
            ("view_report", _("Can view the conversion report")),
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.provider_message_id}"


class MessageEvent(models.Model):
    """Append-only history of a message: one row per transition or provider event."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("kind"), max_length=16, choices=EventKind.choices)
    from_value = models.CharField(_("from"), max_length=64, blank=True, default="")
    to_value = models.CharField(_("to"), max_length=64)
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    actor = models.CharField(_("actor"), max_length=150, blank=True, default="")
    created_at = models.DateTimeField(_("at"))
    detail = models.JSONField(_("detail"), default=dict, blank=True)

    class Meta:
        verbose_name = _("message event")
        verbose_name_plural = _("message events")
        ordering = ["created_at", "id"]
        indexes = [
            models.Index(fields=["message", "created_at"], name="feedback_app_event_msg_at"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}: {self.from_value or '-'} -> {self.to_value}"


class ProviderCall(models.Model):
    """The outbox: a call to a provider, written in the transaction that caused it."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="calls")
    provider = models.CharField(_("provider"), max_length=32)
    operation = models.CharField(_("operation"), max_length=32, choices=Operation.choices)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    state = models.CharField(
        _("state"), max_length=16, choices=CallState.choices, default=CallState.PENDING
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"))
    locked_until = models.DateTimeField(_("locked until"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True, default="")
    last_error_code = models.CharField(_("last error code"), max_length=64, blank=True, default="")
    idempotency_key = models.UUIDField(_("idempotency key"), default=uuid.uuid4, unique=True)
    created_at = models.DateTimeField(_("created at"))
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("provider call")
        verbose_name_plural = _("provider calls")
        ordering = ["-created_at", "-id"]
        indexes = [
            # The sweep looks only at open calls.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(state__in=["pending", "in_flight"]),
                name="feedback_app_call_open_due",
            ),
            models.Index(fields=["message", "operation"], name="feedback_app_call_msg_op"),
        ]

    def __str__(self) -> str:
        return f"{self.operation} {self.payload} ({self.state})"


class IdempotencyRecord(models.Model):
    """The first response to a POST sent with an ``Idempotency-Key``, replayed to its retries.

    Holds a keyed hash of the request body, never the body: a send carries the code.
    """

    key = models.CharField(_("key"), max_length=255)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("user")
    )
    method = models.CharField(_("method"), max_length=8)
    path = models.CharField(_("path"), max_length=255)
    request_hash = models.CharField(_("request hash"), max_length=64)
    #: None while the first request is still running.
    response_status = models.PositiveSmallIntegerField(_("response status"), null=True, blank=True)
    response_body = models.JSONField(
        _("response body"), null=True, blank=True, encoder=DjangoJSONEncoder
    )
    created_at = models.DateTimeField(_("created at"), db_index=True)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key", "path"], name="feedback_app_idempotency_user_key_path"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} [{self.key}]"


#: Upper bounds (seconds, exclusive) of the time-to-confirm histogram buckets of ``HourlyRollup``;
#: a last, open bucket holds everything from one hour on. Changing them needs a migration and a
#: full rollup refresh.
CONFIRM_BUCKETS: tuple[int, ...] = (5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class RollupTotals(models.Model):
    """The counts of a rollup row, whatever its time grain and dimensions."""

    attempted = models.PositiveIntegerField(_("attempted"), default=0)
    delivered_ok = models.PositiveIntegerField(_("delivered OK"), default=0)
    confirmed = models.PositiveIntegerField(_("confirmed"), default=0)
    confirmed_late = models.PositiveIntegerField(_("confirmed late"), default=0)
    failed = models.PositiveIntegerField(_("failed"), default=0)
    expired = models.PositiveIntegerField(_("expired"), default=0)
    pending = models.PositiveIntegerField(_("pending"), default=0)
    superseded = models.PositiveIntegerField(_("superseded"), default=0)
    # Verifications, counted at their first message (its hour and dimensions).
    verifications = models.PositiveIntegerField(_("verifications"), default=0)
    verifications_converted = models.PositiveIntegerField(_("verifications converted"), default=0)
    resends = models.PositiveIntegerField(_("resends"), default=0)
    verifications_resent = models.PositiveIntegerField(_("verifications resent"), default=0)
    # Confirmed messages per time-to-confirm bucket (see CONFIRM_BUCKETS): integer columns
    # rather than an array, so every database sums them the same way.
    confirm_lt_5s = models.PositiveIntegerField(default=0)
    confirm_lt_10s = models.PositiveIntegerField(default=0)
    confirm_lt_20s = models.PositiveIntegerField(default=0)
    confirm_lt_30s = models.PositiveIntegerField(default=0)
    confirm_lt_1m = models.PositiveIntegerField(default=0)
    confirm_lt_2m = models.PositiveIntegerField(default=0)
    confirm_lt_5m = models.PositiveIntegerField(default=0)
    confirm_lt_10m = models.PositiveIntegerField(default=0)
    confirm_lt_30m = models.PositiveIntegerField(default=0)
    confirm_lt_1h = models.PositiveIntegerField(default=0)
    confirm_ge_1h = models.PositiveIntegerField(default=0)
    #: The longest time to confirm, which bounds the open last bucket.
    confirm_seconds_max = models.FloatField(null=True, blank=True)

    class Meta:
        abstract = True


class RollupCounts(RollupTotals):
    """The dimensions and counts of a rollup row, whatever its time grain."""

    provider = models.CharField(_("provider"), max_length=32)
    purpose = models.SlugField(_("purpose"), max_length=64)
    country = models.CharField(_("country"), max_length=2, blank=True)
    sender = models.CharField(_("sender"), max_length=256, blank=True)
    channel = models.CharField(_("channel"), max_length=16)

    class Meta:
        abstract = True


class QuarterHourTotal(RollupTotals):
    """The ``QuarterHourRollup`` rows of 15 minutes of sending (UTC) added up over every
    combination of dimensions: 96 rows a day.

    A report without a dimension filter (the dashboard's default view) reads its time series,
    totals and histogram from these, by local day or hour of any time zone on the 15-minute
    grain, instead of thousands of rows per day. Written only by ``rollups.refresh``, with the
    quarter-hour rows.
    """

    start = models.DateTimeField(_("start"), unique=True)

    class Meta:
        verbose_name = _("quarter-hour total")
        verbose_name_plural = _("quarter-hour totals")

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M}"


class QuarterHourRollup(RollupCounts):
    """The conversion counts of 15 minutes of sending (UTC) and one combination of dimensions.

    Every time zone in use today is offset from UTC by a multiple of 15 minutes, so each local
    midnight is the start of one of these rows: a report's local days are the UTC days of
    ``DailyRollup`` plus or minus these rows (and whole ``HourlyRollup`` hours) between each
    UTC midnight and the local one (docs/dashboard.md). Written only by ``rollups.refresh``,
    from the messages; the hourly rows are added up from these.
    """

    start = models.DateTimeField(_("start"))

    class Meta:
        verbose_name = _("quarter-hour rollup")
        verbose_name_plural = _("quarter-hour rollups")
        constraints = [
            # Its index (start first) serves the reports' range reads.
            models.UniqueConstraint(
                fields=["start", "provider", "purpose", "country", "sender", "channel"],
                name="feedback_app_rollup_quarter_dims",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H:%M} {self.provider}/{self.purpose}/{self.country}"


class HourlyRollup(RollupCounts):
    """Pre-aggregated conversion counts of one UTC hour of sending and one combination of the
    report's dimensions, so the dashboard reads thousands of rows instead of millions.

    Written only by ``rollups.refresh``, which recomputes whole hours (from the
    ``QuarterHourRollup`` rows).
    """

    hour = models.DateTimeField(_("hour"))

    class Meta:
        verbose_name = _("hourly rollup")
        verbose_name_plural = _("hourly rollups")
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "provider", "purpose", "country", "sender", "channel"],
                name="feedback_app_rollup_hour_dims",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.hour:%Y-%m-%d %H:00} {self.provider}/{self.purpose}/{self.country}"


#: The histogram columns of ``HourlyRollup``, in the order of ``CONFIRM_BUCKETS`` (+ the open one).
CONFIRM_BUCKET_FIELDS: tuple[str, ...] = (
    "confirm_lt_5s",
    "confirm_lt_10s",
    "confirm_lt_20s",
    "confirm_lt_30s",
    "confirm_lt_1m",
    "confirm_lt_2m",
    "confirm_lt_5m",
    "confirm_lt_10m",
    "confirm_lt_30m",
    "confirm_lt_1h",
    "confirm_ge_1h",
)


class DailyRollup(RollupCounts):
    """The ``HourlyRollup`` rows of one UTC day added up: same dimensions, counts and histogram.

    A 30-day report reads 30 rows per combination instead of 720. Written only by
    ``rollups.refresh``, from the hourly rows, in the same transaction: a day is exact whenever
    none of its hours changed since the watermark (reports read the other days by the hour).
    """

    day = models.DateField(_("day"))

    class Meta:
        verbose_name = _("daily rollup")
        verbose_name_plural = _("daily rollups")
        constraints = [
            # Its index (day first) serves the reports' range reads.
            models.UniqueConstraint(
                fields=["day", "provider", "purpose", "country", "sender", "channel"],
                name="feedback_app_rollup_day_dims",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.day:%Y-%m-%d} {self.provider}/{self.purpose}/{self.country}"


class RollupState(models.Model):
    """One row: how far ``HourlyRollup`` is up to date.

    Every message whose ``updated_at`` is before ``watermark`` is counted in the rollups as it
    is now; hours holding a message updated since are read from the messages themselves.
    """

    watermark = models.DateTimeField(_("watermark"))
    refreshed_at = models.DateTimeField(_("refreshed at"))

    class Meta:
        verbose_name = _("rollup state")
        verbose_name_plural = _("rollup state")

    def __str__(self) -> str:
        return f"rollups up to {self.watermark:%Y-%m-%d %H:%M:%S}"


class ConversionDashboard(HourlyRollup):
    """The admin's conversion dashboard: a proxy so the admin index links to it."""

    class Meta:
        proxy = True
        # Access is ``view_report``; the proxy needs no permissions of its own.
        default_permissions = ()
        verbose_name = _("conversion dashboard")
        verbose_name_plural = _("conversion dashboard")


class SnsSubscription(models.Model):
    """A SubscriptionConfirmation that SNS sent to a webhook, with the SubscribeURL that confirms
    it: confirmed by the webhook (``SNS_CONFIRM_SUBSCRIPTIONS``) or later from the admin.

    Written only by ``webhooks.subscriptions``.
    """

    provider = models.CharField(_("provider"), max_length=32)
    topic_arn = models.CharField(_("topic ARN"), max_length=256)
    #: SNS's MessageId of the request; SNS sends a request again with the same id.
    sns_message_id = models.CharField(_("SNS message id"), max_length=128)
    subscribe_url = models.TextField(_("subscribe URL"))
    received_at = models.DateTimeField(_("received at"))
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)
    #: Who confirmed it from the admin; empty when the webhook did.
    confirmed_by = models.CharField(_("confirmed by"), max_length=150, blank=True, default="")

    class Meta:
        verbose_name = _("SNS subscription")
        verbose_name_plural = _("SNS subscriptions")
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "sns_message_id"], name="feedback_app_sns_sub_message"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.provider}: {self.topic_arn}"


class Verification(models.Model):
    """One attempt to verify a recipient (a login, a sign-up): its first message and resends.

    Found by a keyed hash of the host's key (``verifications.key_hash``), never the key itself:
    a key may identify a person. Written only by ``services`` (through ``verifications``).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, unique=True)
    purpose = models.SlugField(_("purpose"), max_length=64)
    recipient_hash = models.CharField(_("recipient hash"), max_length=64)
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    #: Messages added after the first one.
    resends = models.PositiveIntegerField(_("resends"), default=0)
    created_at = models.DateTimeField(_("created at"))
    converted_at = models.DateTimeField(_("converted at"), null=True, blank=True)
    converting_message = models.ForeignKey(
        Message,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("converting message"),
    )

    class Meta:
        verbose_name = _("verification")
        verbose_name_plural = _("verifications")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["-created_at"], name="feedback_app_verif_created")]

    def __str__(self) -> str:
        return f"{self.purpose} {self.id}"


class GuardBlock(models.Model):
    """A prefix or country the guard refuses to send to, automatically or by hand.

    Written only by ``feedback_app.blocks``. Active while not lifted and ``until`` (if any) is
    in the future; ``detail`` keeps the numbers an automatic block was decided on.
    """

    class Kind(models.TextChoices):
        PREFIX = "prefix", _("prefix")
        COUNTRY = "country", _("country")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    #: "+2347" for a prefix, "NG" for a country.
    value = models.CharField(_("value"), max_length=16)
    reason = models.CharField(_("reason"), max_length=255)
    detail = models.JSONField(_("detail"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    automatic = models.BooleanField(_("automatic"), default=False)
    created_by = models.CharField(_("created by"), max_length=150, blank=True, default="")
    since = models.DateTimeField(_("since"))
    until = models.DateTimeField(_("until"), null=True, blank=True)
    unblocked_at = models.DateTimeField(_("unblocked at"), null=True, blank=True)
    unblocked_by = models.CharField(_("unblocked by"), max_length=150, blank=True, default="")

    class Meta:
        verbose_name = _("guard block")
        verbose_name_plural = _("guard blocks")
        ordering = ["-since", "-id"]
        indexes = [
            # Sends read the blocks not lifted; a partial index keeps them few.
            models.Index(
                fields=["kind", "value"],
                condition=Q(unblocked_at__isnull=True),
                name="feedback_app_block_open",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.value}"


class BlockedSend(models.Model):
    """A send the guard refused. Neither the number, its hash nor the body: what was refused
    and why, for the dashboard's count of blocked sends."""

    at = models.DateTimeField(_("at"), db_index=True)
    #: The limit that refused it (``SendBlocked.code``).
    code = models.CharField(_("code"), max_length=32)
    provider = models.CharField(_("provider"), max_length=32)
    purpose = models.SlugField(_("purpose"), max_length=64)
    channel = models.CharField(_("channel"), max_length=16, choices=Channel.choices)
    country = models.CharField(_("country"), max_length=2, blank=True, default="")
    prefix = models.CharField(_("prefix"), max_length=16, blank=True, default="")
    #: What kind of client asked ("user", "ip"), never which one; "" when none was given.
    client_kind = models.CharField(_("client kind"), max_length=16, blank=True, default="")
    block = models.ForeignKey(
        GuardBlock,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="blocked_sends",
        verbose_name=_("block"),
    )

    class Meta:
        verbose_name = _("blocked send")
        verbose_name_plural = _("blocked sends")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.code} {self.provider}/{self.purpose} {self.prefix or self.country}"
