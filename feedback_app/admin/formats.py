"""How the admin writes numbers and long values: one format for tiles, tables, charts and alerts.

Counts get thousands separators, rates are percentages with one decimal, durations are seconds,
minutes or hours as a person reads them. Long identifiers (Chime ARNs, provider message ids) are
shortened for display; the full value goes in a ``title`` attribute beside them.
"""

from __future__ import annotations

import re

from django.utils.html import format_html
from django.utils.safestring import SafeString

#: What the admin shows for a missing number (a rate of nothing, a median without confirmations).
MISSING = "–"
#: Values up to this long are shown whole.
SHORT = 24
_STARS = re.compile(r"\*{4,}")


def count(value: int | None) -> str:
    """12345 -> "12,345"."""
    return MISSING if value is None else f"{value:,}"


def percent(rate: float | None) -> str:
    """0.4567 -> "45.7 %"."""
    return MISSING if rate is None else f"{rate * 100:.1f} %"


def mean(value: float | None) -> str:
    """0.4567 -> "0.46" (a mean count per item: resends per verification)."""
    return MISSING if value is None else f"{value:.2f}"


def duration(seconds: float | None) -> str:
    """38 -> "38 s", 522 -> "8.7 min", 7200 -> "2.0 h"."""
    if seconds is None:
        return MISSING
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def shorten(value: str, limit: int = SHORT) -> str:
    """A long value cut in its middle, keeping what tells values apart.

    An ARN keeps its last two path parts (``…/bot/verify-bot``, ``…/channel/7d4e…e5f6``): its
    partition, service, region and account are the same on every row. Anything else longer than
    ``limit`` keeps its start and end.
    """
    if value.startswith("arn:"):
        resource = value.split(":", 5)[-1]
        value = "…/" + "/".join(resource.split("/")[-2:])
    if len(value) <= limit:
        return value
    tail = max(4, limit // 4)
    return f"{value[: limit - tail - 1]}…{value[-tail:]}"


def short_with_title(value: str, limit: int = SHORT) -> SafeString:
    """``shorten(value)`` in a ``<span>`` whose title is the full value (it alone when short)."""
    short = shorten(value, limit)
    if short == value:
        return format_html("{}", value)
    return format_html('<span title="{}">{}</span>', value, short)


def masked(value: str) -> str:
    """A masked recipient with long runs of ``*`` written as three: ``***5d84``."""
    return _STARS.sub("***", value)
