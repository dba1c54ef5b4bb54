"""The conversion report: every number shown anywhere (API, admin, commands) comes from here.

Everything is computed in the database with aggregates; Python only divides a few totals and
interpolates the two rows around each percentile.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any

from django.db import connection
from django.db.models import (
    Aggregate,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Value,
    Window,
)
from django.db.models.functions import RowNumber, TruncDate

from .models import Message
from .states import DELIVERY_OK, Feedback

#: Breakdown keys accepted by ``conversion_report(by=...)``, in the order they are documented.
BREAKDOWNS: tuple[str, ...] = ("day", "country", "provider", "purpose", "sender", "channel")

#: The percentiles of time to confirm: field name -> fraction as (numerator, denominator), so
#: the row positions can be computed with integer arithmetic in SQL.
PERCENTILES: dict[str, tuple[int, int]] = {
    "median_seconds_to_confirm": (1, 2),
    "p90_seconds_to_confirm": (9, 10),
}


@dataclass(frozen=True)
class ReportFilters:
    """Which messages the report covers; the same filters as the message list. None: any."""

    provider: str | None = None
    purpose: str | None = None
    channel: str | None = None
    country: str | None = None
    feedback: str | None = None
    delivery_status: str | None = None
    sender: str | None = None
    #: Inclusive lower and exclusive upper bound of ``sent_at``.
    sent_after: datetime | None = None
    sent_before: datetime | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ReportFilters:
        """Build from cleaned filter data (a form's ``cleaned_data``); empty values mean any."""
        names = {field.name for field in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names and v not in (None, "")})

    def apply(self, queryset: QuerySet[Message]) -> QuerySet[Message]:
        exact = {
            name: getattr(self, name)
            for name in (
                "provider",
                "purpose",
                "channel",
                "country",
                "feedback",
                "delivery_status",
                "sender",
            )
            if getattr(self, name) is not None
        }
        queryset = queryset.filter(**exact)
        if self.sent_after is not None:
            queryset = queryset.filter(sent_at__gte=self.sent_after)
        if self.sent_before is not None:
            queryset = queryset.filter(sent_at__lt=self.sent_before)
        return queryset


@dataclass(frozen=True)
class Totals:
    """The numbers of one report row (or of the whole report)."""

    #: Messages sent (tracked) with these filters.
    attempted: int
    #: Of those, delivered, sent or unknown (``states.DELIVERY_OK``), as Twilio counts them.
    delivered_ok: int
    #: Confirmed, late ones included.
    confirmed: int
    #: Confirmed after the deadline, or after an expiry or failure.
    confirmed_late: int
    failed: int
    expired: int
    #: Still waiting for a confirmation.
    pending: int
    #: confirmed / attempted, and delivered_ok / attempted; None when nothing was attempted.
    conversion_rate: float | None
    delivery_rate: float | None
    #: Seconds from ``sent_at`` to ``confirmed_at`` over confirmed messages (None: none).
    median_seconds_to_confirm: float | None
    p90_seconds_to_confirm: float | None


@dataclass(frozen=True)
class ReportRow:
    #: The group: a date for ``day``, else the field's value ("" when unknown, e.g. country).
    key: date | str
    totals: Totals


@dataclass(frozen=True)
class Report:
    filters: ReportFilters
    by: str | None
    totals: Totals
    #: One row per group, empty without ``by``: days in order, other keys by volume.
    rows: list[ReportRow]


class Percentile(Aggregate):
    """PostgreSQL's ``percentile_cont``: the interpolated value at ``fraction`` (NULLs skipped)."""

    function = "percentile_cont"
    name = "Percentile"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, fraction: float, **extra: Any) -> None:
        super().__init__(expression, fraction=float(fraction), **extra)


_COUNTS: dict[str, Count] = {
    "attempted": Count("pk"),
    "delivered_ok": Count("pk", filter=Q(delivery_status__in=sorted(DELIVERY_OK))),
    "confirmed": Count("pk", filter=Q(feedback=Feedback.CONFIRMED)),
    "confirmed_late": Count("pk", filter=Q(feedback=Feedback.CONFIRMED, confirmed_late=True)),
    "failed": Count("pk", filter=Q(feedback=Feedback.FAILED)),
    "expired": Count("pk", filter=Q(feedback=Feedback.EXPIRED)),
    "pending": Count("pk", filter=Q(feedback=Feedback.PENDING)),
}


def _time_to_confirm() -> ExpressionWrapper:
    return ExpressionWrapper(F("confirmed_at") - F("sent_at"), output_field=DurationField())


def _group_expression(by: str) -> Any:
    if by == "day":
        # Days in the current time zone (settings.TIME_ZONE unless activated otherwise).
        return TruncDate("sent_at")
    return F(by)


def _native_percentiles() -> bool:
    return connection.vendor == "postgresql"


def _percentile_aggregates() -> dict[str, Any]:
    # The difference is NULL unless the message was confirmed, and percentile_cont skips NULLs.
    return {
        name: Percentile(_time_to_confirm(), numerator / denominator, output_field=DurationField())
        for name, (numerator, denominator) in PERCENTILES.items()
    }


def percentiles_by_rank(
    queryset: QuerySet[Message], group: Any | None
) -> dict[Any, dict[str, float | None]]:
    """Percentiles of time to confirm per group, for databases without ``percentile_cont``.

    A window query numbers each group's confirmed messages by time to confirm and returns only
    the (at most two) rows around each percentile; the interpolation is percentile_cont's. The
    result is keyed by group (None without a group).
    """
    duration = _time_to_confirm()
    partition = [group] if group is not None else None
    ranked = queryset.filter(confirmed_at__isnull=False).annotate(
        group_key=group if group is not None else Value(None, output_field=CharField()),
        duration=duration,
        position=Window(RowNumber(), partition_by=partition, order_by=[duration.asc(), F("pk")]),
        size=Window(Count("pk"), partition_by=partition),
    )
    wanted = Q()
    for numerator, denominator in PERCENTILES.values():
        # Row numbers start at 1; the percentile sits between rows lo and hi (often the same).
        offset = (F("size") - 1) * numerator
        lo = offset / denominator + 1
        hi = (offset + denominator - 1) / denominator + 1
        wanted |= Q(position__gte=lo, position__lte=hi)
    rows = ranked.filter(wanted).values_list("group_key", "position", "size", "duration")

    found: dict[Any, dict[int, float]] = {}
    sizes: dict[Any, int] = {}
    for key, position, size, value in rows:
        found.setdefault(key, {})[position] = value.total_seconds()
        sizes[key] = size
    result: dict[Any, dict[str, float | None]] = {}
    for key, values in found.items():
        size = sizes[key]
        result[key] = {}
        for name, (numerator, denominator) in PERCENTILES.items():
            exact = (size - 1) * numerator / denominator
            lo = (size - 1) * numerator // denominator
            low_value = values[lo + 1]
            high_value = values.get(lo + 2, low_value) if exact > lo else low_value
            result[key][name] = low_value + (high_value - low_value) * (exact - lo)
    return result


def _totals(counts: Mapping[str, Any], percentiles: Mapping[str, float | None]) -> Totals:
    attempted = counts["attempted"]
    return Totals(
        attempted=attempted,
        delivered_ok=counts["delivered_ok"],
        confirmed=counts["confirmed"],
        confirmed_late=counts["confirmed_late"],
        failed=counts["failed"],
        expired=counts["expired"],
        pending=counts["pending"],
        conversion_rate=counts["confirmed"] / attempted if attempted else None,
        delivery_rate=counts["delivered_ok"] / attempted if attempted else None,
        median_seconds_to_confirm=percentiles.get("median_seconds_to_confirm"),
        p90_seconds_to_confirm=percentiles.get("p90_seconds_to_confirm"),
    )


def _aggregates() -> dict[str, Any]:
    return {**_COUNTS, **(_percentile_aggregates() if _native_percentiles() else {})}


def _split(row: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, float | None]]:
    counts = {name: row[name] for name in _COUNTS}
    percentiles = {
        name: None if row[name] is None else row[name].total_seconds()
        for name in PERCENTILES
        if name in row
    }
    return counts, percentiles


def conversion_report(
    filters: ReportFilters | None = None,
    by: str | None = None,
    *,
    queryset: QuerySet[Message] | None = None,
) -> Report:
    """Totals for the messages matching ``filters`` and, with ``by``, one row per group.

    ``by`` is one of ``BREAKDOWNS``. ``queryset`` narrows the messages further (a caller that
    may see only some of them). Raises ``ValueError`` for an unknown ``by``.
    """
    if by is not None and by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")
    filters = filters or ReportFilters()
    messages = filters.apply(queryset if queryset is not None else Message.objects.all())
    # values() before annotate() groups; order_by() drops Meta.ordering from GROUP BY.
    messages = messages.order_by()

    counts, percentiles = _split(messages.aggregate(**_aggregates()))
    if not _native_percentiles():
        percentiles = percentiles_by_rank(messages, None).get(None, {})
    totals = _totals(counts, percentiles)

    rows: list[ReportRow] = []
    if by is not None:
        group = _group_expression(by)
        grouped = messages.annotate(group_key=group).values("group_key").annotate(**_aggregates())
        ordering = ["group_key"] if by == "day" else [F("attempted").desc(), "group_key"]
        grouped = grouped.order_by(*ordering)
        ranked = None if _native_percentiles() else percentiles_by_rank(messages, group)
        for row in grouped:
            row_counts, row_percentiles = _split(row)
            if ranked is not None:
                row_percentiles = ranked.get(row["group_key"], {})
            rows.append(
                ReportRow(key=row["group_key"], totals=_totals(row_counts, row_percentiles))
            )
    return Report(filters=filters, by=by, totals=totals, rows=rows)


__all__ = [
    "BREAKDOWNS",
    "Report",
    "ReportFilters",
    "ReportRow",
    "Totals",
    "conversion_report",
]
