"""The conversion report: every number shown anywhere (API, admin, commands) comes from here.

Everything is computed in the database with aggregates; Python only divides a few totals and
interpolates the two rows around each percentile.

Once ``rollups.refresh`` has run, reports read the pre-aggregated ``HourlyRollup`` rows for every
hour that has not changed since the refresh, and the messages themselves for the rest (hours
touched since, and the partial hours at the edges of a time range): counts stay exact and current
to the moment, and the cost no longer grows with the number of messages. Percentiles then come
from the rollups' time-to-confirm histogram, interpolated inside one bucket (docs/dashboard.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from django.db import connection
from django.db.models import (
    Aggregate,
    BooleanField,
    CharField,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    Window,
)
from django.db.models.functions import RowNumber, TruncDate, TruncHour
from django.utils import timezone

from .models import (
    CONFIRM_BUCKET_FIELDS,
    CONFIRM_BUCKETS,
    HourlyRollup,
    Message,
    RollupState,
)
from .states import DELIVERY_OK, Feedback

#: Breakdown keys accepted by ``conversion_report(by=...)``, in the order they are documented.
BREAKDOWNS: tuple[str, ...] = ("day", "country", "provider", "purpose", "sender", "channel")

#: Also accepted by ``conversion_report(by=...)``: hours in the current time zone, for the
#: dashboard's charts of short ranges (not offered by the API).
HOUR = "hour"

#: Where ``conversion_report`` reads: ``auto`` uses the rollups when they can answer the filters
#: (and have been refreshed at least once), ``raw`` only the messages, ``rollups`` insists.
Source = Literal["auto", "raw", "rollups"]

#: The report dimensions a rollup row is keyed by (the filters it can answer).
ROLLUP_DIMENSIONS: tuple[str, ...] = ("provider", "purpose", "country", "sender", "channel")

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


def _group_of(by: str, column: str) -> Any:
    """The group key of ``by`` computed from a datetime ``column`` (or the field itself)."""
    if by == "day":
        # Days and hours in the current time zone (settings.TIME_ZONE unless activated otherwise).
        return TruncDate(column)
    if by == HOUR:
        return TruncHour(column)
    return F(by)


def _order_rows(by: str, rows: list[ReportRow]) -> list[ReportRow]:
    if by in ("day", HOUR):
        return sorted(rows, key=lambda row: row.key)
    return sorted(rows, key=lambda row: (-row.totals.attempted, row.key))


def conversion_report(
    filters: ReportFilters | None = None,
    by: str | None = None,
    *,
    queryset: QuerySet[Message] | None = None,
    source: Source = "auto",
) -> Report:
    """Totals for the messages matching ``filters`` and, with ``by``, one row per group.

    ``by`` is one of ``BREAKDOWNS`` (or ``HOUR``). ``queryset`` narrows the messages further (a
    caller that may see only some of them; a narrowed queryset is always answered from the
    messages). ``source`` says where to read (see ``Source``); counts are the same either way.
    Raises ``ValueError`` for an unknown ``by`` or a ``source="rollups"`` the rollups cannot
    answer.
    """
    if by is not None and by not in BREAKDOWNS and by != HOUR:
        raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")
    filters = filters or ReportFilters()
    plan = _plan(filters, by, queryset, source)
    if plan is not None:
        return _rollup_report(filters, by, plan)
    messages = filters.apply(queryset if queryset is not None else Message.objects.all())
    # values() before annotate() groups; order_by() drops Meta.ordering from GROUP BY.
    messages = messages.order_by()

    counts, percentiles = _split(messages.aggregate(**_aggregates()))
    if not _native_percentiles():
        percentiles = percentiles_by_rank(messages, None).get(None, {})
    totals = _totals(counts, percentiles)

    rows: list[ReportRow] = []
    if by is not None:
        group = _group_of(by, "sent_at")
        grouped = messages.annotate(group_key=group).values("group_key").annotate(**_aggregates())
        ranked = None if _native_percentiles() else percentiles_by_rank(messages, group)
        for row in grouped:
            row_counts, row_percentiles = _split(row)
            if ranked is not None:
                row_percentiles = ranked.get(row["group_key"], {})
            rows.append(
                ReportRow(key=row["group_key"], totals=_totals(row_counts, row_percentiles))
            )
    return Report(filters=filters, by=by, totals=totals, rows=_order_rows(by, rows) if by else [])


# -- rollups -----------------------------------------------------------------------------------


class Seconds(Func):
    """Seconds (a float) of a duration expression, in SQL."""

    output_field = FloatField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # SQLite and MySQL compute a datetime difference as microseconds.
        return super().as_sql(compiler, connection, template="((%(expressions)s) / 1000000.0)")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return super().as_sql(
            compiler,
            connection,
            template="EXTRACT(EPOCH FROM (%(expressions)s))::double precision",
        )


def _bucket_bounds() -> list[tuple[float | None, float | None]]:
    """(lower, upper) seconds of each histogram bucket, upper exclusive; None: unbounded."""
    edges: list[float | None] = [None, *CONFIRM_BUCKETS, None]
    return list(zip(edges[:-1], edges[1:], strict=True))


def rollup_aggregates() -> dict[str, Any]:
    """Aggregates over messages giving exactly the columns of one ``HourlyRollup`` row.

    They read the ``confirm_seconds`` annotation that ``with_rollup_aggregates`` adds.
    """
    aggregates: dict[str, Any] = dict(_COUNTS)
    for name, (lower, upper) in zip(CONFIRM_BUCKET_FIELDS, _bucket_bounds(), strict=True):
        # NULL (not confirmed) passes no comparison, so only confirmed messages are counted.
        bucket = Q(confirmed_at__isnull=False)
        if lower is not None:
            bucket &= Q(confirm_seconds__gte=lower)
        if upper is not None:
            bucket &= Q(confirm_seconds__lt=upper)
        aggregates[name] = Count("pk", filter=bucket)
    aggregates["confirm_seconds_max"] = Max("confirm_seconds")
    return aggregates


def with_rollup_aggregates(messages: QuerySet[Message], *group: Any) -> QuerySet[Message]:
    """``messages`` grouped by the ``group`` expressions (``group_0``, ...) as rows shaped like
    ``HourlyRollup``; one row over all of them without a group."""
    named = {f"group_{index}": expression for index, expression in enumerate(group)}
    annotated = messages.order_by().annotate(confirm_seconds=Seconds(_time_to_confirm()), **named)
    if not named:
        # A constant group key: one row, like aggregate(), but still a queryset.
        annotated = annotated.annotate(group_all=Value(1))
        named = {"group_all": None}
    return annotated.values(*named).annotate(**rollup_aggregates())


_ROLLUP_COLUMNS: tuple[str, ...] = (*_COUNTS, *CONFIRM_BUCKET_FIELDS)


def _sum_rollups() -> dict[str, Any]:
    return {
        **{name: Sum(name) for name in _ROLLUP_COLUMNS},
        "confirm_seconds_max": Max("confirm_seconds_max"),
    }


def changed_hours(since: datetime) -> list[datetime]:
    """The UTC hours of sending of the messages updated at or after ``since``, in order."""
    return sorted(_changed_hours(Message.objects.filter(updated_at__gte=since)))


def _changed_hours(messages: QuerySet[Message]) -> QuerySet[Message]:
    return (
        messages.order_by()
        .annotate(sent_hour=TruncHour("sent_at", tzinfo=UTC))
        .values_list("sent_hour", flat=True)
        .distinct()
    )


def rollup_state() -> tuple[datetime | None, list[datetime]]:
    """The rollups' watermark (None: never refreshed) and the hours changed since, in order.

    One query, since every report asks: the state row, then one row per changed hour.
    """
    watermark = RollupState.objects.filter(pk=1).values("watermark")
    is_state = BooleanField()
    state = (
        RollupState.objects.filter(pk=1)
        .order_by()
        .values_list("watermark", Value(True, output_field=is_state))
    )
    hours = _changed_hours(Message.objects.filter(updated_at__gte=Subquery(watermark))).values_list(
        "sent_hour", Value(False, output_field=is_state)
    )
    found = None
    changed = []
    for moment, from_state in state.union(hours, all=True):
        if from_state:
            found = moment
        else:
            changed.append(moment)
    return found, sorted(changed)


def hour_ranges(hours: list[datetime]) -> list[tuple[datetime, datetime]]:
    """Sorted hours merged into [start, end) ranges of consecutive hours."""
    ranges: list[tuple[datetime, datetime]] = []
    for hour in hours:
        if ranges and ranges[-1][1] == hour:
            ranges[-1] = (ranges[-1][0], hour + timedelta(hours=1))
        else:
            ranges.append((hour, hour + timedelta(hours=1)))
    return ranges


def in_hour_ranges(ranges: list[tuple[datetime, datetime]], column: str) -> Q:
    """``column`` in any of the [start, end) ranges (matches nothing without ranges)."""
    condition = Q(pk__in=[])
    for start, end in ranges:
        condition |= Q(**{f"{column}__gte": start, f"{column}__lt": end})
    return condition


@dataclass(frozen=True)
class _Plan:
    """Which hours to read from the rollups: those of ``[first, last)`` not in ``changed``."""

    changed: list[tuple[datetime, datetime]]
    first: datetime | None
    last: datetime | None


def _whole_hours_only() -> bool:
    # Days and hours of a zone offset by a fraction of an hour split the rollups' UTC hours.
    offset = timezone.localtime().utcoffset()
    return offset is None or offset.total_seconds() % 3600 == 0


def _plan(
    filters: ReportFilters,
    by: str | None,
    queryset: QuerySet[Message] | None,
    source: Source,
) -> _Plan | None:
    """How to answer from the rollups, or None to read only the messages."""
    if source == "raw":
        return None
    reasons = []
    if queryset is not None and (queryset.model is not Message or queryset.query.where):
        reasons.append("a narrowed queryset")
    if filters.feedback is not None or filters.delivery_status is not None:
        reasons.append("a feedback or delivery status filter")
    if by in ("day", HOUR) and not _whole_hours_only():
        reasons.append("a time zone offset by a fraction of an hour")
    watermark, changed = rollup_state() if not reasons else (None, [])
    if watermark is None and not reasons:
        reasons.append("rollups never refreshed")
    if reasons:
        if source == "rollups":
            raise ValueError(f"the rollups cannot answer: {', '.join(reasons)}")
        return None

    def ceil_hour(moment: datetime) -> datetime:
        floor = floor_hour(moment)
        return floor if floor == moment else floor + timedelta(hours=1)

    first = ceil_hour(filters.sent_after) if filters.sent_after else None
    last = floor_hour(filters.sent_before) if filters.sent_before else None
    return _Plan(changed=hour_ranges(changed), first=first, last=last)


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class _Sums:
    """Counts and histogram of one group, added up from rollup rows and messages."""

    counts: dict[str, int]
    maximum: float | None

    @classmethod
    def of(cls, row: Mapping[str, Any]) -> _Sums:
        return cls({name: row[name] or 0 for name in _ROLLUP_COLUMNS}, row["confirm_seconds_max"])

    def add(self, other: _Sums) -> None:
        for name, value in other.counts.items():
            self.counts[name] += value
        if other.maximum is not None:
            self.maximum = max(self.maximum or other.maximum, other.maximum)

    @property
    def histogram(self) -> list[int]:
        return [self.counts[name] for name in CONFIRM_BUCKET_FIELDS]

    def totals(self) -> Totals:
        percentiles = {
            name: histogram_percentile(self.histogram, self.maximum, numerator / denominator)
            for name, (numerator, denominator) in PERCENTILES.items()
        }
        return _totals(self.counts, percentiles)


def histogram_percentile(counts: list[int], maximum: float | None, fraction: float) -> float | None:
    """The percentile at ``fraction`` of a time-to-confirm histogram (seconds; None if empty).

    The rank is percentile_cont's, ``(n - 1) * fraction``; inside the bucket holding it the
    values are taken as spread evenly, so the result lies in the bucket of the exact answer
    (or between the two buckets when percentile_cont interpolates across a bucket edge). The
    largest value bounds the last buckets, so a histogram of one value gives that value back.
    """
    size = sum(counts)
    if not size:
        return None
    position = (size - 1) * fraction
    seen = 0
    for count, (lower, upper) in zip(counts, _bucket_bounds(), strict=True):
        if count and position < seen + count:
            low = lower or 0.0
            high = upper if upper is not None else maximum
            if maximum is not None:
                high = min(high, maximum) if high is not None else maximum
                low = min(low, maximum)
            high = low if high is None else high
            return low + (high - low) * (position - seen + 0.5) / count
        seen += count
    return maximum


def _rollup_parts(
    filters: ReportFilters, plan: _Plan
) -> tuple[QuerySet[HourlyRollup] | None, QuerySet[Message] | None]:
    """The rollup rows and the messages that together cover ``filters`` exactly once."""
    dimensions = {name: getattr(filters, name) for name in ROLLUP_DIMENSIONS}
    messages = filters.apply(Message.objects.all()).order_by()
    if plan.first is not None and plan.last is not None and plan.first >= plan.last:
        return None, messages  # the range holds no whole hour
    rollups = HourlyRollup.objects.filter(
        **{name: value for name, value in dimensions.items() if value is not None}
    ).order_by()
    from_messages = in_hour_ranges(plan.changed, "sent_at")
    if plan.first is not None:
        rollups = rollups.filter(hour__gte=plan.first)
        from_messages |= Q(sent_at__lt=plan.first)
    if plan.last is not None:
        rollups = rollups.filter(hour__lt=plan.last)
        from_messages |= Q(sent_at__gte=plan.last)
    if plan.changed:
        rollups = rollups.exclude(in_hour_ranges(plan.changed, "hour"))
    has_messages = bool(plan.changed) or plan.first is not None or plan.last is not None
    return rollups, messages.filter(from_messages) if has_messages else None


def _rollup_sums(filters: ReportFilters, by: str | None, plan: _Plan) -> dict[Any, _Sums]:
    """Sums per group (key None without ``by``) from rollups and messages."""
    rollups, messages = _rollup_parts(filters, plan)
    found: list[tuple[Any, _Sums]] = []
    if rollups is not None:
        if by is None:
            found.append((None, _Sums.of(rollups.aggregate(**_sum_rollups()))))
        else:
            grouped = rollups.annotate(group_key=_group_of(by, "hour")).values("group_key")
            found += [
                (row["group_key"], _Sums.of(row)) for row in grouped.annotate(**_sum_rollups())
            ]
    if messages is not None:
        group = [_group_of(by, "sent_at")] if by is not None else []
        for row in with_rollup_aggregates(messages, *group):
            found.append((row.get("group_0"), _Sums.of(row)))
    sums: dict[Any, _Sums] = {}
    for key, part in found:
        if key in sums:
            sums[key].add(part)
        else:
            sums[key] = part
    return sums


def _rollup_report(filters: ReportFilters, by: str | None, plan: _Plan) -> Report:
    totals = _rollup_sums(filters, None, plan).get(None)
    rows: list[ReportRow] = []
    if by is not None:
        rows = [
            ReportRow(key=key, totals=sums.totals())
            for key, sums in _rollup_sums(filters, by, plan).items()
            if sums.counts["attempted"]
        ]
    return Report(
        filters=filters,
        by=by,
        totals=totals.totals() if totals else _Sums.of(dict.fromkeys(_sum_rollups())).totals(),
        rows=_order_rows(by, rows) if by else [],
    )


@dataclass(frozen=True)
class HistogramBucket:
    """Confirmed messages whose time to confirm is in ``[lower, upper)`` seconds."""

    lower: float
    #: None for the last, open bucket.
    upper: float | None
    count: int


def confirm_time_histogram(
    filters: ReportFilters | None = None, *, source: Source = "auto"
) -> list[HistogramBucket]:
    """The distribution of time to confirm, in the rollups' buckets (``CONFIRM_BUCKETS``)."""
    filters = filters or ReportFilters()
    plan = _plan(filters, None, None, source)
    if plan is not None:
        sums = _rollup_sums(filters, None, plan).get(None)
        counts = sums.histogram if sums else [0] * len(CONFIRM_BUCKET_FIELDS)
    else:
        row = next(iter(with_rollup_aggregates(filters.apply(Message.objects.all()))), None)
        counts = _Sums.of(row).histogram if row else [0] * len(CONFIRM_BUCKET_FIELDS)
    return [
        HistogramBucket(lower=lower or 0.0, upper=upper, count=count)
        for count, (lower, upper) in zip(counts, _bucket_bounds(), strict=True)
    ]


def with_time_range(
    filters: ReportFilters, sent_after: datetime | None, sent_before: datetime | None
) -> ReportFilters:
    """The same filters over another time range."""
    return replace(filters, sent_after=sent_after, sent_before=sent_before)


__all__ = [
    "BREAKDOWNS",
    "HOUR",
    "HistogramBucket",
    "Report",
    "ReportFilters",
    "ReportRow",
    "Source",
    "Totals",
    "confirm_time_histogram",
    "conversion_report",
    "histogram_percentile",
    "with_time_range",
]
