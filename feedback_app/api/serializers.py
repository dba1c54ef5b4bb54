"""Serializers: what the API reads (the arguments of the services) and what it shows.

Nothing here writes: views pass validated data to ``services``. The recipient is shown masked
only, and a send's body is read and never shown.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Message, MessageEvent
from ..providers.base import get_provider
from ..reports import BREAKDOWNS
from ..states import Channel, Delivery
from ..tokens import confirmation_token, confirmation_url
from ..verifications import KEY_MAX_LENGTH
from .fields import (
    AwareDateTimeField,
    MetadataField,
    ProviderChoices,
    StrictBooleanField,
    StrictCharField,
    StrictSlugField,
    StrictUUIDField,
)

# -- what the API shows ------------------------------------------------------------------------


class MessageEventSerializer(serializers.ModelSerializer):
    detail = serializers.DictField(read_only=True)

    class Meta:
        model = MessageEvent
        # No id: no sequential id leaves the app.
        fields = ["kind", "from_value", "to_value", "source", "actor", "created_at", "detail"]
        read_only_fields = fields


class MessageSerializer(serializers.ModelSerializer):
    recipient = serializers.CharField(
        source="recipient_masked", read_only=True, help_text=_("Masked: +1******0123.")
    )
    metadata = serializers.DictField(read_only=True)
    verification_id = serializers.UUIDField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "The public id of the verification (attempt) this message belongs to; null when it "
            "was sent without a `verification` key."
        ),
    )

    class Meta:
        model = Message
        # Never the recipient hash: it is only for look-ups inside the app.
        fields = [
            "id",
            "provider",
            "provider_message_id",
            "channel",
            "purpose",
            "sender",
            "recipient",
            "country",
            "delivery_status",
            "provider_status",
            "feedback",
            "feedback_requested",
            "confirmed_late",
            "sent_at",
            "delivered_at",
            "confirmed_at",
            "feedback_deadline",
            "metadata",
            "verification_id",
            "resend",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CreatedMessageSerializer(MessageSerializer):
    """What track and send answer: the message, and the token that confirms it."""

    confirmation_token = serializers.SerializerMethodField(
        help_text=_(
            "Confirms this message, until its feedback window closes: "
            "POST api/confirm/{token}/ or the link c/{token}/. A credential: give it only "
            "to the recipient."
        )
    )

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "confirmation_token"]
        read_only_fields = fields

    def get_confirmation_token(self, message: Message) -> str:
        return confirmation_token(message)


class MessageDetailSerializer(MessageSerializer):
    events = MessageEventSerializer(many=True, read_only=True, help_text=_("Oldest first."))

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "events"]
        read_only_fields = fields


class PublicMessageSerializer(serializers.ModelSerializer):
    """What a token holder (the recipient, not an operator) may see of its message."""

    class Meta:
        model = Message
        fields = ["id", "feedback", "confirmed_at", "confirmed_late"]
        read_only_fields = fields


@extend_schema_field(
    {
        # anyOf, not oneOf: a whole Message also matches PublicMessage.
        "anyOf": [
            {"$ref": "#/components/schemas/Message"},
            {"$ref": "#/components/schemas/PublicMessage"},
        ],
        "description": "The whole message for a user with `feedback_app.view_message`; "
        "otherwise only its id and state (`PublicMessage`).",
    }
)
class TransitionMessageField(serializers.Field):
    """The message after a transition, shown in full only to users who may view messages."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(read_only=True, **kwargs)

    def to_representation(self, message: Message) -> dict[str, Any]:
        return _message_serializer(bool(self.context.get("full", False))).to_representation(message)


@functools.cache
def _message_serializer(full: bool) -> serializers.ModelSerializer:
    """The one instance per process of what shows a message after a transition.

    A ModelSerializer works out its fields from the model the first time it is used (mapping
    each model field, its validators and their translated messages: about half a millisecond,
    measured), and this answer is on every confirm and fail; ``to_representation`` keeps nothing
    between calls, so one instance serves every request and thread. The current time zone and
    DRF's ``DATETIME_FORMAT`` are still read on each call.
    """
    return MessageSerializer() if full else PublicMessageSerializer()


class TransitionResultSerializer(serializers.Serializer):
    """The answer to a confirm or fail."""

    # context={"full": True} shows the whole message (TransitionMessageField).
    changed = serializers.BooleanField(
        help_text=_("True when this request made the change; false when it was already made.")
    )
    message = TransitionMessageField()


class TokenConfirmationSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    message = PublicMessageSerializer()


# -- what the API reads ------------------------------------------------------------------------


_TO_HELP = _("E.164 number (+14155550123) or, for chat, the channel address. Not stored.")


def _provider_field(**kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=ProviderChoices(), help_text=_("A provider key configured on this site."), **kwargs
    )


_MESSAGE_ID_HELP = _(
    "Choose the message's id yourself (default: a new one), for example to have made its "
    "confirmation token before. Must not be in use."
)


def _message_id_field() -> StrictUUIDField:
    return StrictUUIDField(required=False, help_text=_MESSAGE_ID_HELP)


def _verification_field() -> StrictCharField:
    return StrictCharField(
        required=False,
        write_only=True,
        max_length=KEY_MAX_LENGTH,
        help_text=_(
            "Your key of the attempt this message belongs to (a login attempt id, a session "
            "key): messages with the same key are one verification, the later ones resends. "
            "Stored only as a keyed hash. A key already used for another recipient or purpose "
            "is refused (verification_mismatch)."
        ),
    )


class TrackSerializer(serializers.Serializer):
    """The arguments of ``track()``: a message the caller sent itself."""

    message_id = _message_id_field()
    provider = _provider_field()
    provider_message_id = StrictCharField(max_length=128)
    to = StrictCharField(write_only=True, max_length=1024, help_text=_TO_HELP)
    purpose = StrictSlugField(max_length=64, default="otp")
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.SMS)
    sender = StrictCharField(max_length=256, allow_blank=True, default="")
    sent_at = AwareDateTimeField(required=False, help_text=_("Default: now."))
    feedback_requested = StrictBooleanField(default=True)
    metadata = MetadataField(required=False)
    delivery_status = serializers.ChoiceField(choices=Delivery.choices, default=Delivery.QUEUED)
    provider_status = StrictCharField(max_length=64, allow_blank=True, default="")
    verification = _verification_field()


#: Longest body passed to a provider (Twilio's limit), placeholders replaced.
BODY_MAX_LENGTH = 1600
#: Replaced in a send's body by the message's confirmation link and token.
LINK_PLACEHOLDER = "{link}"
TOKEN_PLACEHOLDER = "{token}"  # noqa: S105 (a placeholder, not a secret)


class SendSerializer(serializers.Serializer):
    """The arguments of ``send()``. The body is passed to the provider and never stored.

    ``{link}`` and ``{token}`` in the body become the message's confirmation link and token,
    so a caller without the Python API can put them in the message.
    """

    # The link is built on PUBLIC_URL or on context["request"].

    message_id = _message_id_field()
    provider = _provider_field()
    to = StrictCharField(write_only=True, max_length=1024, help_text=_TO_HELP)
    body = StrictCharField(
        write_only=True,
        max_length=BODY_MAX_LENGTH,
        trim_whitespace=False,
        help_text=_(
            "Sent to the provider; never stored, logged or returned. `{link}` becomes the "
            "message's confirmation link (c/{token}/, absolute), `{token}` its confirmation "
            "token; at most 1600 characters once they are replaced."
        ),
    )
    purpose = StrictSlugField(max_length=64, default="otp")
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.SMS)
    sender = StrictCharField(
        max_length=256, required=False, help_text=_("Default: the provider's own choice.")
    )
    metadata = MetadataField(required=False)
    verification = _verification_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        # Here, not at the provider: an unsupported channel is the caller's mistake (400),
        # while the provider's refusal would be a 502.
        channels = getattr(get_provider(attrs["provider"]), "channels", None)
        if channels is not None and attrs["channel"] not in channels:
            raise serializers.ValidationError(
                {
                    "channel": serializers.ErrorDetail(
                        _("The provider %(provider)s does not send %(channel)s messages.")
                        % {"provider": attrs["provider"], "channel": attrs["channel"]},
                        code="unsupported_channel",
                    )
                }
            )
        body = attrs["body"]
        if LINK_PLACEHOLDER in body or TOKEN_PLACEHOLDER in body:
            # The token is bound to the id, so the id is chosen here, before sending.
            message_id = attrs.setdefault("message_id", uuid.uuid4())
            if LINK_PLACEHOLDER in body:
                link = confirmation_url(message_id, self.context.get("request"))
                body = body.replace(LINK_PLACEHOLDER, link)
            body = body.replace(TOKEN_PLACEHOLDER, confirmation_token(message_id))
            if len(body) > BODY_MAX_LENGTH:
                raise serializers.ValidationError(
                    {
                        "body": serializers.ErrorDetail(
                            _(
                                "With the link or token in it, the body is longer than "
                                "%(max)d characters."
                            )
                            % {"max": BODY_MAX_LENGTH},
                            code="max_length",
                        )
                    }
                )
            attrs["body"] = body
        return attrs


class TransitionSerializer(serializers.Serializer):
    at = AwareDateTimeField(required=False, help_text=_("When it happened. Default: now."))


class ProviderReferenceSerializer(TransitionSerializer):
    """A message named by the provider's id, for callers that kept only that."""

    provider = _provider_field()
    provider_message_id = StrictCharField(max_length=128)


class ReportQuerySerializer(serializers.Serializer):
    by = serializers.ChoiceField(
        choices=BREAKDOWNS, required=False, help_text=_("Add one row per value of this.")
    )


class TotalsSerializer(serializers.Serializer):
    attempted = serializers.IntegerField()
    delivered_ok = serializers.IntegerField(help_text=_("Delivered, sent or unknown."))
    confirmed = serializers.IntegerField(help_text=_("Late conversions included."))
    confirmed_late = serializers.IntegerField()
    failed = serializers.IntegerField()
    expired = serializers.IntegerField()
    pending = serializers.IntegerField()
    conversion_rate = serializers.FloatField(
        allow_null=True, help_text=_("confirmed / attempted; null when nothing was attempted.")
    )
    delivery_rate = serializers.FloatField(
        allow_null=True, help_text=_("delivered_ok / attempted; null when nothing was attempted.")
    )
    median_seconds_to_confirm = serializers.FloatField(allow_null=True)
    p90_seconds_to_confirm = serializers.FloatField(allow_null=True)
    superseded = serializers.IntegerField(
        help_text=_("Another message of their verification was confirmed.")
    )
    verifications = serializers.IntegerField(
        help_text=_("Verifications (attempts) started by these messages, each counted once.")
    )
    verifications_converted = serializers.IntegerField(
        help_text=_("Of those, converted through any of their messages.")
    )
    verification_conversion_rate = serializers.FloatField(
        allow_null=True,
        help_text=_("verifications_converted / verifications; null without verifications."),
    )
    resends = serializers.IntegerField(help_text=_("Messages after the first of a verification."))
    verifications_resent = serializers.IntegerField(
        help_text=_("Verifications with at least one resend.")
    )
    mean_resends = serializers.FloatField(
        allow_null=True, help_text=_("resends / verifications; null without verifications.")
    )
    resent_share = serializers.FloatField(
        allow_null=True,
        help_text=_("verifications_resent / verifications; null without verifications."),
    )


class ReportRowSerializer(serializers.Serializer):
    key = serializers.CharField(
        help_text=_("The day (YYYY-MM-DD) or the value of the breakdown field; '' when unknown.")
    )
    totals = TotalsSerializer()


class ReportSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=BREAKDOWNS, allow_null=True)
    totals = TotalsSerializer()
    rows = ReportRowSerializer(many=True)
    data_as_of = serializers.DateTimeField(
        allow_null=True,
        help_text=_(
            "Every write up to this moment is in the numbers: now, unless the reports read a "
            "replica that lags (FEEDBACK_APP['REPORTS_DATABASE']); null when unknown."
        ),
    )


# -- errors, for the schema --------------------------------------------------------------------


class FieldErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    detail = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """Every error response: see ``api/exceptions.py``."""

    def get_fields(self) -> dict[str, serializers.Field]:
        # Built here because a declared field named "fields" would hide Serializer.fields.
        return {
            "code": serializers.CharField(
                help_text=_("Stable, for programs: invalid, not_found, throttled, ...")
            ),
            "detail": serializers.CharField(help_text=_("For people.")),
            "fields": serializers.DictField(
                child=FieldErrorSerializer(many=True),
                help_text=_("Errors per request field (non_field_errors: the whole request)."),
            ),
        }
