"""Query filters of the message list, also used (validated the same way) by the report."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from django_filters.fields import IsoDateTimeField
from drf_spectacular.utils import extend_schema_field

from ..models import Message
from ..states import Channel, Delivery, Feedback
from .fields import AwareDateTimeField, ProviderChoices


class BoundedIsoDateTimeField(IsoDateTimeField):
    """An ISO 8601 time with a zone offset that can be turned into UTC (year 1 at +05:00 cannot).

    Without an offset (a date alone too) it is refused, as in the writes: the server's zone
    would be a guess.
    """

    def to_python(self, value: Any) -> datetime | None:
        if isinstance(value, str):
            try:
                parsed = parse_datetime(value.strip())
            except ValueError:
                parsed = None
            if parsed is not None and timezone.is_naive(parsed):
                raise ValidationError(AwareDateTimeField.default_error_messages["naive"], "naive")
        result = super().to_python(value)
        if result is not None:
            try:
                # In UTC: PostgreSQL refuses offsets of 16 hours or more, which ISO 8601 allows.
                result = result.astimezone(UTC)
            except OverflowError as exc:
                raise ValidationError(_("This time is out of range."), code="overflow") from exc
        return result


class BoundedIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = BoundedIsoDateTimeField


class UpperCaseField(forms.CharField):
    """Country codes in any case, as the dashboard and ``feedback_report`` take them."""

    def to_python(self, value: Any) -> str:
        return super().to_python(value).upper()


class UpperCaseFilter(django_filters.CharFilter):
    field_class = UpperCaseField


def _text_filter(
    max_length: int,
    help_text: str,
    filter_class: type[django_filters.CharFilter] = django_filters.CharFilter,
) -> django_filters.CharFilter:
    """A CharFilter whose length limit is in the schema too (drf-spectacular leaves it out)."""
    text_filter = filter_class(max_length=max_length, help_text=help_text)
    schema = {"type": "string", "maxLength": max_length, "description": help_text}
    return extend_schema_field(schema)(text_filter)


_TIME_HELP = _("ISO 8601 with a zone offset (2025-05-01T00:00:00Z).")


class MessageFilter(django_filters.FilterSet):
    provider = django_filters.ChoiceFilter(choices=ProviderChoices())
    purpose = _text_filter(64, _("The purpose slug, exactly."))
    channel = django_filters.ChoiceFilter(choices=Channel.choices)
    country = _text_filter(
        2, _("ISO 3166-1 alpha-2 code of the recipient's number, any case."), UpperCaseFilter
    )
    feedback = django_filters.ChoiceFilter(choices=Feedback.choices)
    delivery_status = django_filters.ChoiceFilter(choices=Delivery.choices)
    sender = _text_filter(256, _("The sender, exactly."))
    sent_after = BoundedIsoDateTimeFilter(
        field_name="sent_at",
        lookup_expr="gte",
        help_text=format_lazy("{} {}", _("Sent at or after this time."), _TIME_HELP),
    )
    sent_before = BoundedIsoDateTimeFilter(
        field_name="sent_at",
        lookup_expr="lt",
        help_text=format_lazy("{} {}", _("Sent before this time."), _TIME_HELP),
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
