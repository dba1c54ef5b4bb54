"""Serializers: what the API reads (the arguments of the services) and what it shows.

Nothing here writes: views pass validated data to ``services``. The recipient is shown masked
only, and a send's body is read and never shown.
"""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..models import Message, MessageEvent
from ..reports import BREAKDOWNS
from ..states import Channel, Delivery
from .fields import (
    AwareDateTimeField,
    MetadataField,
    ProviderChoices,
    StrictBooleanField,
    StrictCharField,
    StrictSlugField,
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
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class MessageDetailSerializer(MessageSerializer):
    events = MessageEventSerializer(many=True, read_only=True, help_text=_("Oldest first."))

    class Meta(MessageSerializer.Meta):
        fields = [*MessageSerializer.Meta.fields, "events"]
        read_only_fields = fields


class TransitionResultSerializer(serializers.Serializer):
    changed = serializers.BooleanField(
        help_text=_("True when this request made the change; false when it was already made.")
    )
    message = MessageSerializer()


class PublicMessageSerializer(serializers.ModelSerializer):
    """What a token holder (the recipient, not an operator) may see of its message."""

    class Meta:
        model = Message
        fields = ["id", "feedback", "confirmed_at", "confirmed_late"]
        read_only_fields = fields


class TokenConfirmationSerializer(serializers.Serializer):
    changed = serializers.BooleanField()
    message = PublicMessageSerializer()


# -- what the API reads ------------------------------------------------------------------------


_TO_HELP = _("E.164 number (+14155550123) or, for chat, the channel address. Not stored.")


def _provider_field(**kwargs: Any) -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=ProviderChoices(), help_text=_("A provider key configured on this site."), **kwargs
    )


class TrackSerializer(serializers.Serializer):
    """The arguments of ``track()``: a message the caller sent itself."""

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


class SendSerializer(serializers.Serializer):
    """The arguments of ``send()``. The body is passed to the provider and never stored."""

    provider = _provider_field()
    to = StrictCharField(write_only=True, max_length=1024, help_text=_TO_HELP)
    body = StrictCharField(
        write_only=True,
        max_length=1600,
        trim_whitespace=False,
        help_text=_("Sent to the provider; never stored, logged or returned."),
    )
    purpose = StrictSlugField(max_length=64, default="otp")
    channel = serializers.ChoiceField(choices=Channel.choices, default=Channel.SMS)
    sender = StrictCharField(
        max_length=256, required=False, help_text=_("Default: the provider's own choice.")
    )
    metadata = MetadataField(required=False)


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


class ReportRowSerializer(serializers.Serializer):
    key = serializers.CharField(
        help_text=_("The day (YYYY-MM-DD) or the value of the breakdown field; '' when unknown.")
    )
    totals = TotalsSerializer()


class ReportSerializer(serializers.Serializer):
    by = serializers.ChoiceField(choices=BREAKDOWNS, allow_null=True)
    totals = TotalsSerializer()
    rows = ReportRowSerializer(many=True)


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
