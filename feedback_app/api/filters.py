"""Query filters of the message list, also used (validated the same way) by the report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField

from ..models import Message
from ..states import Channel, Delivery, Feedback
from .fields import ProviderChoices


class BoundedIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time that can be turned into UTC (year 1 at +05:00 cannot)."""

    def to_python(self, value: Any) -> datetime | None:
        result = super().to_python(value)
        if result is not None:
            try:
                result.astimezone(UTC)
            except OverflowError as exc:
                raise ValidationError(_("This time is out of range."), code="overflow") from exc
        return result


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


class MessageFilter(django_filters.FilterSet):
    provider = django_filters.ChoiceFilter(choices=ProviderChoices())
    purpose = django_filters.CharFilter(max_length=64)
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    country = django_filters.CharFilter(
        max_length=2, help_text=_("ISO 3166-1 alpha-2 code of the recipient's number.")
    )
    feedback = django_filters.ChoiceFilter(choices=Feedback.choices)
    delivery_status = django_filters.ChoiceFilter(choices=Delivery.choices)
    sender = django_filters.CharFilter(max_length=256)
    sent_after = BoundedIsoDateTimeFilter(
        field_name="sent_at", lookup_expr="gte", help_text=_("Sent at or after this time.")
    )
    sent_before = BoundedIsoDateTimeFilter(
        field_name="sent_at", lookup_expr="lt", help_text=_("Sent before this time.")
    )

    class Meta:
        model = Message
        fields = [
            "provider",
            "purpose",
            "channel",
            "country",
            "feedback",
            "delivery_status",
            "sender",
            "sent_after",
            "sent_before",
        ]
