"""Serializer fields that refuse what DRF's would coerce, so the schema's types are enforced.

DRF turns ``14155550123`` into ``"14155550123"`` and ``"yes"`` into ``True``, takes naive times
in the server's zone and lets JSON the database cannot store through; these do not.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from ..providers.base import provider_keys

#: Earliest accepted time: nothing was sent before it, and it keeps epoch arithmetic sane.
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
#: How far in the future a time may be (clock skew between the caller and this server).
CLOCK_SKEW = timedelta(minutes=5)
#: Largest ``metadata`` object, as compact JSON.
METADATA_MAX_BYTES = 4096


class ProviderChoices:
    """The configured provider keys, read each time a field or filter is built."""

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter([(key, key) for key in provider_keys()])


class StrictStringMixin:
    """Refuse anything that is not a JSON string instead of turning it into one."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")  # type: ignore[attr-defined]
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictCharField(StrictStringMixin, serializers.CharField):
    pass


class StrictSlugField(StrictStringMixin, serializers.SlugField):
    pass


class StrictUUIDField(StrictStringMixin, serializers.UUIDField):
    """A UUID written as a string: not the integer DRF would also take."""


class StrictBooleanField(serializers.BooleanField):
    """Only ``true`` and ``false``: not ``"yes"``, ``1`` or ``"on"``."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class AwareDateTimeField(serializers.DateTimeField):
    """An ISO 8601 time with a zone offset, between 2000 and a few minutes from now."""

    default_error_messages = {
        "naive": _("Give a time zone offset (Z or +hh:mm)."),
        "out_of_range": _("Give a time after 2000 and not in the future."),
    }

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid", format="ISO 8601")
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is not None and timezone.is_naive(parsed):
            self.fail("naive")
        result = super().to_internal_value(value)
        if not EARLIEST <= result <= timezone.now() + CLOCK_SKEW:
            self.fail("out_of_range")
        return result


class MetadataField(serializers.DictField):
    """A small JSON object that every supported database can store."""

    default_error_messages = {
        "too_large": _("Keep metadata under {max_bytes} bytes of JSON."),
        "not_storable": _("Metadata may not contain NUL characters, NaN or infinite numbers."),
    }

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        value = super().to_internal_value(data)
        try:
            text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        except (ValueError, TypeError, RecursionError):
            self.fail("not_storable")
        # PostgreSQL's jsonb refuses \u0000 in any string.
        if "\\u0000" in text:
            self.fail("not_storable")
        if len(text.encode()) > METADATA_MAX_BYTES:
            self.fail("too_large", max_bytes=METADATA_MAX_BYTES)
        return value
