"""The conversion report: every number shown anywhere (API, admin, commands) comes from here.

Everything is computed in the database with aggregates; Python only divides a few totals and
interpolates the two rows around each percentile.

Once ``rollups.refresh`` has run, reports read the pre-aggregated rollup rows (``DailyRollup``,
``HourlyRollup``, ``QuarterHourRollup``; ``QuarterHourTotal`` without a dimension filter) for
every hour that has not changed since the refresh, and the messages themselves for the rest
(hours touched since, and the minutes at the edges of a time range that are not a whole quarter
hour): counts stay exact and current to the moment, and the cost no longer grows with the
number of messages. Percentiles then come from the rollups' time-to-confirm histogram,
interpolated inside one bucket (docs/dashboard.md).

Every read here goes to the database alias ``FEEDBACK_APP["REPORTS_DATABASE"]`` (``using``
overrides it), which may be a read replica; nothing here writes (docs/deployment.md).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, fields, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.models import (
    Aggregate,
    Case,
    CharField,
    Count,
    DateField,
    DurationField,
    ExpressionWrapper,
    F,
    FloatField,
    Func,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber, TruncDate, TruncHour
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from .conf import app_settings
from .models import (
    CONFIRM_BUCKET_FIELDS,
    CONFIRM_BUCKETS,
    DailyRollup,
    HourlyRollup,
    Message,
    QuarterHourRollup,
    QuarterHourTotal,
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


def reports_database(using: str | None = None) -> str:
    """The database alias reports read: ``using``, else ``FEEDBACK_APP["REPORTS_DATABASE"]``."""
    return using or app_settings.REPORTS_DATABASE


#: The filter value that selects messages without a value (chat messages have no country, many
#: messages no sender), where an empty value means "any": the dashboard and feedback_report.
NONE = "__none__"


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
    #: Another message of its verification was confirmed (docs/verifications.md).
    superseded: int = 0
    #: Verifications (attempts, ``send(..., verification=key)``) started by these messages:
    #: each counted once, at its first message.
    verifications: int = 0
    #: Of those, converted through any of their messages.
    verifications_converted: int = 0
    #: verifications_converted / verifications; None without verifications.
    verification_conversion_rate: float | None = None
    #: Messages after the first of those verifications.
    resends: int = 0
    #: Verifications with at least one resend.
    verifications_resent: int = 0
    #: resends / verifications, and verifications_resent / verifications; None without any.
    mean_resends: float | None = None
    resent_share: float | None = None


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


_COUNTS: dict[str, Any] = {
    "attempted": Count("pk"),
    "delivered_ok": Count("pk", filter=Q(delivery_status__in=sorted(DELIVERY_OK))),
    "confirmed": Count("pk", filter=Q(feedback=Feedback.CONFIRMED)),
    "confirmed_late": Count("pk", filter=Q(feedback=Feedback.CONFIRMED, confirmed_late=True)),
    "failed": Count("pk", filter=Q(feedback=Feedback.FAILED)),
    "expired": Count("pk", filter=Q(feedback=Feedback.EXPIRED)),
    "pending": Count("pk", filter=Q(feedback=Feedback.PENDING)),
    "superseded": Count("pk", filter=Q(feedback=Feedback.SUPERSEDED)),
    # A verification counts at its first message; its counts are read from its row there.
    "verifications": Count("pk", filter=Q(resend=False, verification__isnull=False)),
    "verifications_converted": Count(
        "pk", filter=Q(resend=False, verification__converted_at__isnull=False)
    ),
    "resends": Coalesce(Sum("verification__resends", filter=Q(resend=False)), 0),
    "verifications_resent": Count("pk", filter=Q(resend=False, verification__resends__gte=1)),
}


def _time_to_confirm() -> ExpressionWrapper:
    return ExpressionWrapper(F("confirmed_at") - F("sent_at"), output_field=DurationField())


def _native_percentiles(db: str) -> bool:
    return connections[db].vendor == "postgresql"


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


def _ratio(numerator: int, denominator: int) -> float | None:
    return numerator / denominator if denominator else None


def _totals(counts: Mapping[str, Any], percentiles: Mapping[str, float | None]) -> Totals:
    attempted = counts["attempted"]
    verifications = counts["verifications"]
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
        superseded=counts["superseded"],
        verifications=verifications,
        verifications_converted=counts["verifications_converted"],
        verification_conversion_rate=_ratio(counts["verifications_converted"], verifications),
        resends=counts["resends"],
        verifications_resent=counts["verifications_resent"],
        mean_resends=_ratio(counts["resends"], verifications),
        resent_share=_ratio(counts["verifications_resent"], verifications),
    )


def _aggregates(db: str) -> dict[str, Any]:
    return {**_COUNTS, **(_percentile_aggregates() if _native_percentiles(db) else {})}


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
    using: str | None = None,
) -> Report:
    """Totals for the messages matching ``filters`` and, with ``by``, one row per group.

    ``by`` is one of ``BREAKDOWNS`` (or ``HOUR``). ``queryset`` narrows the messages further (a
    caller that may see only some of them; a narrowed queryset is always answered from the
    messages). ``source`` says where to read (see ``Source``); counts are the same either way.
    ``using``: the database alias to read (default: ``reports_database()``). Raises
    ``ValueError`` for an unknown ``by`` or a ``source="rollups"`` the rollups cannot answer.
    """
    if by is not None and by not in BREAKDOWNS and by != HOUR:
        raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")
    filters = filters or ReportFilters()
    db = reports_database(using)
    plan = _plan(filters, by, queryset, source, db)
    if plan is not None:
        return _rollup_report(filters, by, plan)
    messages = filters.apply((queryset if queryset is not None else Message.objects).using(db))
    # values() before annotate() groups; order_by() drops Meta.ordering from GROUP BY.
    messages = messages.order_by()

    counts, percentiles = _split(messages.aggregate(**_aggregates(db)))
    if not _native_percentiles(db):
        percentiles = percentiles_by_rank(messages, None).get(None, {})
    totals = _totals(counts, percentiles)

    rows: list[ReportRow] = []
    if by is not None:
        group = _group_of(by, "sent_at")
        grouped = messages.annotate(group_key=group).values("group_key").annotate(**_aggregates(db))
        ranked = None if _native_percentiles(db) else percentiles_by_rank(messages, group)
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


def changed_hours(since: datetime, *, using: str = DEFAULT_DB_ALIAS) -> list[datetime]:
    """The UTC hours of sending of the messages updated at or after ``since``, in order, read
    on ``using`` (the rollup refresh reads the database it writes; reports their own)."""
    messages = Message.objects.using(using).filter(updated_at__gte=since)
    return sorted(_changed_hours(messages))


def _changed_hours(messages: QuerySet[Message]) -> QuerySet[Message]:
    return (
        messages.order_by()
        .annotate(sent_hour=TruncHour("sent_at", tzinfo=UTC))
        .values_list("sent_hour", flat=True)
        .distinct()
    )


#: The rollup state pinned by ``same_rollup_state``, by database alias (None: read it for each
#: report).
_pinned_state: ContextVar[dict[str, tuple[datetime | None, list[datetime]]] | None] = ContextVar(
    "feedback_app_rollup_state", default=None
)


def rollup_state(using: str | None = None) -> tuple[datetime | None, list[datetime]]:
    """The rollups' watermark (None: never refreshed) and the hours changed since, in order,
    as the reports database (``using``: another alias) has them.

    Two queries: the watermark first, then the changed hours with the watermark as a plain
    parameter. Compared against a subquery instead, PostgreSQL cannot estimate how many rows
    are that recent and scans the whole messages table unless it happens to be stored in
    ``updated_at`` order; with the value it reads the few recent rows through the index.
    """
    db = reports_database(using)
    pinned = _pinned_state.get()
    if pinned is not None and db in pinned:
        return pinned[db]
    state = RollupState.objects.using(db).filter(pk=1)
    watermark = state.values_list("watermark", flat=True).first()
    if watermark is None:
        return None, []
    return watermark, changed_hours(watermark, using=db)


@contextmanager
def same_rollup_state(using: str | None = None) -> Iterator[None]:
    """Read the rollup state once for every report inside the block (a page's several reads).

    They then also agree with one another: a refresh between two of them cannot make one
    read a message's hour from the rollups and the other from the messages.
    """
    db = reports_database(using)
    pinned = _pinned_state.get()
    if pinned is not None and db in pinned:
        yield
        return
    token = _pinned_state.set({**(pinned or {}), db: rollup_state(db)})
    try:
        yield
    finally:
        _pinned_state.reset(token)


def data_as_of(using: str | None = None) -> datetime | None:
    """The moment up to which the reports database holds every write: "data as of".

    A database that is not a standby holds every committed write, and the reports read the
    rollups plus the messages changed since their watermark: current to the moment, now. A
    PostgreSQL hot standby holds what its replay has reached: the commit time of the last
    transaction it replayed, or the last rollup refresh it holds if later (the refresh writes
    every minute, a heartbeat while nothing else is written). Elsewhere an alias other than the
    default database says only when its rollups were refreshed, a lower bound. None: unknown
    (a standby that has replayed nothing and holds no refresh). No query on "default" (every
    write goes there: it is no standby), one on another PostgreSQL alias.
    """
    db = reports_database(using)
    if db == DEFAULT_DB_ALIAS:
        return timezone.now()
    connection = connections[db]
    refreshed = RollupState.objects.using(db).filter(pk=1).values_list("refreshed_at", flat=True)
    if connection.vendor == "postgresql":
        sql, params = refreshed.query.get_compiler(using=db).as_sql()
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_is_in_recovery(), pg_last_xact_replay_timestamp(), "  # noqa: S608
                f"({sql})",
                params,
            )
            standby, replayed, refreshed_at = cursor.fetchone()
        if not standby:
            return timezone.now()
        known = [moment for moment in (replayed, refreshed_at) if moment is not None]
        return max(known) if known else None
    if _same_database(db, DEFAULT_DB_ALIAS):
        return timezone.now()
    return refreshed.first()


def _same_database(alias: str, other: str) -> bool:
    keys = ("ENGINE", "NAME", "HOST", "PORT")
    first, second = connections[alias].settings_dict, connections[other].settings_dict
    return all(first.get(key) == second.get(key) for key in keys)


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


def floor_day(moment: datetime) -> datetime:
    """The start of the UTC day holding ``moment``."""
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def day_ranges(ranges: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    """The whole UTC days touching the [start, end) ``ranges``, merged into [start, end) ranges."""
    days: list[tuple[datetime, datetime]] = []
    one_day = timedelta(days=1)
    for start, end in ranges:
        first = floor_day(start)
        last = floor_day(end - timedelta(microseconds=1)) + one_day
        if days and days[-1][1] >= first:
            days[-1] = (days[-1][0], max(days[-1][1], last))
        else:
            days.append((first, last))
    return days


@dataclass(frozen=True)
class _Plan:
    """Which hours to read from the rollups: those of ``[first, last)`` not in ``changed``."""

    changed: list[tuple[datetime, datetime]]
    first: datetime | None
    last: datetime | None
    #: The database alias the report reads.
    db: str


def _whole_hours_only(*moments: datetime | None) -> bool:
    """Whether the current time zone is offset from UTC by whole hours now and at ``moments``."""
    zone = timezone.get_current_timezone()
    for moment in (timezone.now(), *moments):
        offset = None if moment is None else moment.astimezone(zone).utcoffset()
        if offset is not None and offset.total_seconds() % 3600:
            return False
    return True


def split_hours(
    by: str | None, lower: datetime | None, upper: datetime | None, using: str | None = None
) -> list[datetime]:
    """The UTC hours in ``[lower, upper)`` that straddle two groups of ``by`` (day or hour in
    the current time zone), in order: none unless the zone is offset by a fraction of an hour.

    An hourly rollup row cannot be put in one such group: reports read those hours from the
    messages. In Asia/Kolkata (UTC+05:30) that is the hour around each local midnight for days,
    and every hour for hours. An open bound stops at the first or last message sent.
    """
    if by not in ("day", HOUR) or _whole_hours_only(lower, upper):
        return []
    if lower is None or upper is None:
        messages = Message.objects.using(reports_database(using))
        oldest, newest = messages.aggregate(Min("sent_at"), Max("sent_at")).values()
        if oldest is None:
            return []
        lower = lower or oldest
        upper = upper or newest + timedelta(microseconds=1)
    zone = timezone.get_current_timezone()

    def group(moment: datetime) -> Any:
        local = moment.astimezone(zone)
        return local.date() if by == "day" else local.replace(minute=0, second=0, microsecond=0)

    hours = []
    hour = floor_hour(lower)
    while hour < upper:
        if group(hour) != group(hour + timedelta(hours=1, microseconds=-1)):
            hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def _plan(
    filters: ReportFilters,
    by: str | None,
    queryset: QuerySet[Message] | None,
    source: Source,
    db: str,
) -> _Plan | None:
    """How to answer from the rollups, or None to read only the messages."""
    if source == "raw":
        return None
    reasons = []
    if queryset is not None and (queryset.model is not Message or queryset.query.where):
        reasons.append("a narrowed queryset")
    if filters.feedback is not None or filters.delivery_status is not None:
        reasons.append("a feedback or delivery status filter")
    watermark, changed = rollup_state(db) if not reasons else (None, [])
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
    plan = _Plan(changed=hour_ranges(changed), first=first, last=last, db=db)
    return _plan_for(plan, filters, by)


def _plan_for(plan: _Plan, filters: ReportFilters, by: str | None) -> _Plan:
    """``plan`` for a report by ``by``: hours split between two local hours are read like
    changed ones, from the messages, so every figure comes the same way (histogram
    percentiles) whatever the time zone. Local days are built by ``_local_day_sums`` (which
    falls back to ``_with_split_hours`` in a zone it cannot serve)."""
    if by == "day" or (by == HOUR and _totals_range(filters, plan) is not None):
        return plan
    return _with_split_hours(plan, filters, by)


def _with_split_hours(plan: _Plan, filters: ReportFilters, by: str | None) -> _Plan:
    """``plan`` with the hours split between two groups of ``by`` read like changed ones."""
    split = split_hours(by, filters.sent_after, filters.sent_before, plan.db)
    if not split:
        return plan
    one = timedelta(hours=1)
    hours = {
        start + one * n for start, end in plan.changed for n in range(int((end - start) / one))
    }
    return replace(plan, changed=hour_ranges(sorted(hours | set(split))))


def _daily_rows_answer(keys: Sequence[str | None]) -> bool:
    """Whether daily rollups can give the groups of ``keys``: not hours, and days only when
    they are UTC days."""
    return HOUR not in keys and ("day" not in keys or _utc_days())


def floor_hour(moment: datetime) -> datetime:
    """The start of the UTC hour holding ``moment``."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass
class _Sums:
    """Counts and histogram of one group, added up from rollup rows and messages."""

    counts: dict[str, int]
    maximum: float | None
    #: The largest maximum of the rows taken off (local days; None: none taken off).
    taken_off_maximum: float | None = None

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
    values are taken as spread evenly on a log scale (geometric interpolation; linear in the
    first bucket, which starts at 0), so the result lies in the bucket of the exact answer (or
    between the two buckets when percentile_cont interpolates across a bucket edge). Times to
    confirm thin out within a bucket as they grow; on the demo history the log scale halves the
    error of p90 against spreading them evenly (docs/dashboard.md). The largest value bounds
    the last buckets.
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
            share = (position - seen + 0.5) / count
            if low > 0 and high > low:
                return low * (high / low) ** share
            return low + (high - low) * share
        seen += count
    return maximum


def _utc_days() -> bool:
    """Whether days in the current time zone are UTC days (so daily rollups can give them)."""
    zone = timezone.get_current_timezone()
    return zone is UTC or getattr(zone, "key", None) in ("UTC", "Etc/UTC", "Etc/UCT", "UCT")


def _bounds(column: str, lower: datetime | date | None, upper: datetime | date | None) -> Q:
    """``lower <= column < upper``, each bound only when given."""
    bounds = {}
    if lower is not None:
        bounds[f"{column}__gte"] = lower
    if upper is not None:
        bounds[f"{column}__lt"] = upper
    return Q(**bounds)


def _days_of(ranges: list[tuple[datetime, datetime]]) -> list[date]:
    return [
        (start + timedelta(days=offset)).date()
        for start, end in ranges
        for offset in range((end - start).days)
    ]


@dataclass(frozen=True)
class _Part:
    """One source of rows shaped alike: a SELECT and the column its each output name holds."""

    queryset: QuerySet[Any]
    #: Uniform column name -> the queryset's output column (group key or counter).
    columns: dict[str, str]
    #: -1: rows taken off (the counts negated, no maximum), as a local day does with the rows
    #: between a UTC midnight and its own.
    sign: int = 1


def _group_columns(groupings: Sequence[str | None]) -> list[str]:
    return [by for by in dict.fromkeys(groupings) if by is not None]


_SUMMED: tuple[str, ...] = (*_ROLLUP_COLUMNS, "confirm_seconds_max")
_TAKEN_OFF_MAX = "taken_off_max"


def _rollup_parts(
    filters: ReportFilters, groupings: Sequence[str | None], plan: _Plan
) -> list[_Part]:
    """The daily rows, hourly rows and messages that together cover ``filters`` exactly once.

    Whole UTC days whose hours did not change since the watermark come from ``DailyRollup``,
    the other whole hours not changed from ``HourlyRollup``, the rest (partial hours at the
    edges, hours changed since) from the messages, aggregated like a rollup row.
    """
    keys = _group_columns(groupings)
    dimensions = {
        name: getattr(filters, name)
        for name in ROLLUP_DIMENSIONS
        if getattr(filters, name) is not None
    }
    messages = filters.apply(Message.objects.using(plan.db)).order_by()
    if plan.first is not None and plan.last is not None and plan.first >= plan.last:
        return [_messages_part(messages, keys)]  # the range holds no whole hour
    parts = []
    hourly = HourlyRollup.objects.using(plan.db).filter(
        _bounds("hour", plan.first, plan.last), **dimensions
    )
    if plan.changed:
        hourly = hourly.exclude(in_hour_ranges(plan.changed, "hour"))
    if _daily_rows_answer(keys):
        # The whole UTC days of the range: [first_day, last_day), None for unbounded.
        first_day = last_day = None
        if plan.first is not None:
            first_day = floor_day(plan.first - timedelta(microseconds=1)) + timedelta(days=1)
        if plan.last is not None:
            last_day = floor_day(plan.last)
        if first_day is None or last_day is None or first_day < last_day:
            changed_days = day_ranges(plan.changed)
            daily = (
                DailyRollup.objects.using(plan.db)
                .filter(
                    _bounds(
                        "day",
                        first_day.date() if first_day else None,
                        last_day.date() if last_day else None,
                    ),
                    **dimensions,
                )
                .exclude(day__in=_days_of(changed_days))
            )
            parts.append(_rollup_part(daily, keys, "day"))
            # The hours of the days read whole are left to the daily rows: the hours are those
            # of the edges and of the changed days, as ranges the index on hour reads alone
            # (rather than the whole range less the days, a month of rows read and dropped).
            ranges = list(changed_days)
            if first_day is not None and plan.first is not None and plan.first < first_day:
                ranges.append((plan.first, first_day))
            if last_day is not None and plan.last is not None and last_day < plan.last:
                ranges.append((last_day, plan.last))
            hourly = hourly.filter(in_hour_ranges(ranges, "hour"))
    parts.append(_rollup_part(hourly, keys, "hour"))
    # The messages of the edges and of the changed hours: ranges clipped to the report's,
    # without the report's range around them, so the index on sent_at reads only those.
    lower, upper = filters.sent_after, filters.sent_before
    ranges = [
        (max(start, lower) if lower else start, min(end, upper) if upper else end)
        for start, end in plan.changed
    ]
    # The partial hours at the edges: their whole quarter hours from the quarter-hour rows
    # (unless the hour changed since), the minutes left from the messages.
    quarters = []
    if plan.first is not None:
        in_messages, in_quarters = _edge_split(lower, plan.first, plan.changed, at_start=True)
        ranges += in_messages
        quarters += in_quarters
    if plan.last is not None:
        in_messages, in_quarters = _edge_split(plan.last, upper, plan.changed, at_start=False)
        ranges += in_messages
        quarters += in_quarters
    if quarters:
        rows = QuarterHourRollup.objects.using(plan.db).filter(
            in_hour_ranges(quarters, "start"), **dimensions
        )
        parts.append(_rollup_part(rows, keys, "start"))
    ranges = [(start, end) for start, end in ranges if start < end]
    if ranges:
        edges = replace(filters, sent_after=None, sent_before=None).apply(
            Message.objects.using(plan.db)
        )
        parts.append(_messages_part(edges.filter(in_hour_ranges(ranges, "sent_at")), keys))
    return parts


def _edge_split(
    start: datetime, end: datetime, changed: list[tuple[datetime, datetime]], *, at_start: bool
) -> tuple[list[tuple[datetime, datetime]], list[tuple[datetime, datetime]]]:
    """A partial hour ``[start, end)`` at the start of a report (``start`` is the report's, ``end``
    an hour) or at its end (``start`` an hour, ``end`` the report's) as (the ranges to read from
    the messages, the whole quarter hours to read from the quarter-hour rows)."""
    if start >= end:
        return [], []
    if at_start:
        quarter = _ceil_to(start, QUARTER_HOUR)
        rest, whole = (start, quarter), (quarter, end)
    else:
        quarter = _floor_to(end, QUARTER_HOUR)
        whole, rest = (start, quarter), (quarter, end)
    if whole[0] >= whole[1] or any(lo < end and hi > start for lo, hi in changed):
        return [(start, end)], []
    return [rest], [whole]


def _rollup_part(rows: QuerySet[Any], keys: list[str], time: str) -> _Part:
    """Rollup rows (hourly or daily, their time column ``time``) with their group keys."""

    def key(by: str) -> Any:
        if time == "day" and by == "day":
            return F("day")
        return _group_of(by, time)

    named = {f"key_{by}": key(by) for by in keys}
    # Summed per combination of keys here, once: a month of rows in, a few hundred out, so the
    # grouping sets around (one hash table each) add up a few hundred rows, not thousands.
    summed = {f"sum_{c}": aggregate for c, aggregate in _sum_rollups().items()}
    queryset = rows.order_by().annotate(**named).values(*named).annotate(**summed)
    return _Part(queryset, {**{name: name for name in named}, **{c: f"sum_{c}" for c in _SUMMED}})


def _messages_part(messages: QuerySet[Message], keys: list[str]) -> _Part:
    """Messages aggregated per group key like rollup rows."""
    queryset = with_rollup_aggregates(messages, *(_group_of(by, "sent_at") for by in keys))
    columns = {f"key_{by}": f"group_{index}" for index, by in enumerate(keys)}
    return _Part(queryset, {**columns, **{c: c for c in _SUMMED}})


def _grouped_sql(
    parts: list[_Part], groupings: list[str | None], db: str
) -> tuple[str, list[Any]] | None:
    """One statement adding up ``parts`` per grouping.

    Its rows: the index of the grouping in ``groupings``, one column per group key (the
    grouping's own key, NULL for the others) and the sums. PostgreSQL groups once with
    GROUPING SETS; elsewhere a UNION ALL of one GROUP BY per grouping over the same rows (a CTE).
    None when no part can hold a row.
    """
    connection = connections[db]
    quote = connection.ops.quote_name
    keys = _group_columns(groupings)
    key_columns = [quote(f"key_{by}") for by in keys]
    # Parts taken off have their own maximum: whether it is the day's (see _local_day_sums).
    summed = [*_SUMMED, *([_TAKEN_OFF_MAX] if any(part.sign < 0 for part in parts) else [])]
    uniform = [*(f"key_{by}" for by in keys), *summed]
    selects, params = [], []
    for index, part in enumerate(parts):
        try:
            sql, part_params = part.queryset.query.get_compiler(connection=connection).as_sql()
        except EmptyResultSet:
            continue  # a part that can hold no row (e.g. no hour changed)
        columns = ", ".join(
            f"{_part_column(part, name, connection)} AS {quote(name)}" for name in uniform
        )
        selects.append(f"SELECT {columns} FROM ({sql}) {quote(f'part_{index}')}")  # noqa: S608
        params += part_params
    if not selects:
        return None
    rows = " UNION ALL ".join(selects)
    sums = ", ".join(
        f"SUM({quote(name)})" if name in _ROLLUP_COLUMNS else f"MAX({quote(name)})"
        for name in summed
    )
    if connection.vendor == "postgresql" and keys:
        # GROUPING(key) is 0 in the rows grouped by that key, 1 in the others.
        which = "CASE"
        for index, by in enumerate(groupings):
            if by is None:
                which += " WHEN " + " AND ".join(f"GROUPING({c}) = 1" for c in key_columns)
            else:
                which += f" WHEN GROUPING({quote(f'key_{by}')}) = 0"
            which += f" THEN {index}"
        sets = ", ".join("()" if by is None else f"({quote(f'key_{by}')})" for by in groupings)
        sql = (
            f"SELECT {which} END, {', '.join(key_columns)}, {sums} "  # noqa: S608
            f"FROM ({rows}) {quote('parts')} GROUP BY GROUPING SETS ({sets})"
        )
        return sql, params
    selects = []
    for index, by in enumerate(groupings):
        columns = ", ".join(
            [str(index)]
            + [c if other == by else "NULL" for other, c in zip(keys, key_columns, strict=True)]
        )
        group = f" GROUP BY {quote(f'key_{by}')}" if by is not None else ""
        selects.append(f"SELECT {columns}, {sums} FROM {quote('parts')}{group}")  # noqa: S608
    return f"WITH {quote('parts')} AS ({rows}) {' UNION ALL '.join(selects)}", params


def _part_column(part: _Part, name: str, connection: Any) -> str:
    """The SQL of column ``name`` of ``part``: its counters negated when the part is taken off,
    and then its maximum apart, as ``taken_off_max`` (a maximum cannot be taken off: a local
    day keeps that of the UTC days it is built from, see ``_local_day_sums``)."""
    taken_off = part.sign < 0
    if name == _TAKEN_OFF_MAX:
        if not taken_off:
            return _null_float(connection)
        name = "confirm_seconds_max"
    elif taken_off and name == "confirm_seconds_max":
        return _null_float(connection)
    column = _as_count(connection.ops.quote_name(part.columns[name]), name, connection.vendor)
    if taken_off and name in _ROLLUP_COLUMNS:
        return f"-{column}"
    return column


def _null_float(connection: Any) -> str:
    return f"CAST(NULL AS {FloatField().db_type(connection)})"


def _as_count(column: str, name: str, vendor: str) -> str:
    """A counter of one part row as an integer: PostgreSQL sums integers into a bigint, but
    bigints (``COUNT``) into a numeric, several times slower to add up."""
    if name in _ROLLUP_COLUMNS and vendor == "postgresql":
        return f"CAST({column} AS integer)"
    return column


def _key_value(by: str, value: Any) -> Any:
    """A group key as the ORM gives it: dates for days, aware datetimes for hours."""
    if by == "day" and isinstance(value, str):
        return parse_date(value[:10])
    if by == "day" and isinstance(value, datetime):
        return value.date()
    if by == HOUR:
        if isinstance(value, str):
            value = parse_datetime(value)
        if timezone.is_naive(value):
            # As TruncHour does: the database gives the local wall time of the hour.
            value = timezone.make_aware(value)
    return value


def _grouped_sums(
    filters: ReportFilters, groupings: Sequence[str | None], plan: _Plan
) -> dict[str | None, dict[Any, _Sums]]:
    """Sums per grouping and group key (key None for the grouping None), in one query (two when
    local days, not UTC days, are read apart by ``_local_day_sums``)."""
    wanted = list(dict.fromkeys(groupings))
    times = [by for by in wanted if by in ("day", HOUR)]
    # The totals alone, or with a time series, need no dimension.
    bounds = _totals_range(filters, plan) if times or wanted == [None] else None
    if bounds is not None:
        found = _totals_sums(filters, times, plan, *bounds)
        rest = [by for by in wanted if by not in found]
        return {**found, **(_grouped_sums(filters, rest, plan) if rest else {})}
    if "day" in wanted and not _utc_days():
        days = _local_day_sums(filters, plan)
        if days is None:  # a zone whose midnights the quarter hours cannot give
            plan = _with_split_hours(plan, filters, "day")
        else:
            others = [by for by in wanted if by != "day"]
            found = _grouped_sums(filters, others, plan) if others else {}
            return {**found, "day": days}
    statement = _grouped_sql(_rollup_parts(filters, wanted, plan), wanted, plan.db)
    return _run_grouped(statement, wanted, plan.db)


@contextmanager
def _serial(db: str) -> Iterator[Any]:
    """A cursor on ``db`` whose statements PostgreSQL runs without parallel workers (in a
    transaction of its own, or till the end of the caller's): each part of a rollup read is
    small by construction (a month of rollup rows, minutes of messages), and starting workers
    took longer than the reads themselves (a third of the dashboard's SQL time on 2 cores,
    docs/benchmarks.md)."""
    connection = connections[db]
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    with transaction.atomic(using=db), connection.cursor() as cursor:
        cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
        yield cursor


def _run_grouped(
    statement: tuple[str, list[Any]] | None, wanted: list[str | None], db: str
) -> dict[str | None, dict[Any, _Sums]]:
    """Run a ``_grouped_sql`` statement: sums per grouping and group key."""
    keys = _group_columns(wanted)
    found: dict[str | None, dict[Any, _Sums]] = {by: {} for by in wanted}
    if statement is None:
        return found
    sql, params = statement
    with _serial(db) as cursor:
        cursor.execute(sql, params)
        for row in cursor.fetchall():
            by = wanted[row[0]]
            key = None if by is None else _key_value(by, row[1 + keys.index(by)])
            values = dict(zip(_SUMMED, row[1 + len(keys) :], strict=False))
            # PostgreSQL sums bigints as numeric (Decimal): counts are integers.
            counts = {name: int(values[name] or 0) for name in _ROLLUP_COLUMNS}
            sums = _Sums(counts, values["confirm_seconds_max"])
            if len(row) > 1 + len(keys) + len(_SUMMED):
                sums.taken_off_maximum = row[-1]
            found[by][key] = sums
    return found


# -- series from the quarter-hour totals ------------------------------------------------------


def _totals_range(filters: ReportFilters, plan: _Plan) -> tuple[datetime, datetime] | None:
    """The ``[lower, upper)`` range whose local days and hours ``QuarterHourTotal`` can give for
    ``filters`` (an open bound: the first or last message), or None when it cannot: a dimension
    is filtered, or a local day or hour of the current time zone does not start a UTC quarter
    hour there."""
    if any(getattr(filters, name) is not None for name in ROLLUP_DIMENSIONS):
        return None
    lower, upper = filters.sent_after, filters.sent_before
    if lower is None or upper is None:
        messages = Message.objects.using(plan.db)
        oldest, newest = messages.aggregate(Min("sent_at"), Max("sent_at")).values()
        if oldest is None:
            return (lower or upper or timezone.now(),) * 2  # nothing to read
        lower = lower or oldest
        upper = upper or newest + timedelta(microseconds=1)
    if lower >= upper:
        return lower, lower
    zone = timezone.get_current_timezone()
    # Local hours start on quarter hours where the offset is a multiple of 15 minutes: at the
    # bounds, and at each local midnight (a change of offset starts a new day's offset).
    offsets = [moment.astimezone(zone).utcoffset() for moment in (lower, upper)]
    if _local_midnights(lower, upper) is None or any(
        offset is None or offset % QUARTER_HOUR for offset in offsets
    ):
        return None
    return lower, upper


def _totals_sums(
    filters: ReportFilters, times: list[str], plan: _Plan, lower: datetime, upper: datetime
) -> dict[str | None, dict[Any, _Sums]]:
    """The totals and the time series ``times`` (local days or hours) over ``[lower, upper)``
    from the quarter-hour totals, and from the messages for the hours changed since the last
    refresh and the bits at the edges that are not whole quarter hours: one statement."""
    wanted: list[str | None] = [None, *times]
    if lower >= upper:
        return {by: {} for by in wanted}
    first, last = _ceil_to(lower, QUARTER_HOUR), _floor_to(upper, QUARTER_HOUR)
    parts = []
    ranges = [(max(start, lower), min(end, upper)) for start, end in plan.changed]
    if first < last:
        rows = QuarterHourTotal.objects.using(plan.db).filter(start__gte=first, start__lt=last)
        if plan.changed:
            rows = rows.exclude(in_hour_ranges(plan.changed, "start"))
        parts.append(_rollup_part(rows, times, "start"))
        ranges += [(lower, first), (last, upper)]
    else:
        ranges.append((lower, upper))
    ranges = [(start, end) for start, end in ranges if start < end]
    if ranges:
        messages = replace(filters, sent_after=None, sent_before=None).apply(
            Message.objects.using(plan.db)
        )
        parts.append(_messages_part(messages.filter(in_hour_ranges(ranges, "sent_at")), times))
    return _run_grouped(_grouped_sql(parts, wanted, plan.db), wanted, plan.db)


# -- local days --------------------------------------------------------------------------------

QUARTER_HOUR = timedelta(minutes=15)
ONE_HOUR = timedelta(hours=1)
ONE_DAY = timedelta(days=1)
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _floor_to(moment: datetime, step: timedelta) -> datetime:
    """The start of the UTC ``step`` (15 minutes, an hour, a day) holding ``moment``."""
    return _EPOCH + (moment - _EPOCH) // step * step


def floor_quarter_hour(moment: datetime) -> datetime:
    """The start of the UTC quarter hour holding ``moment``: where a range starting at it reads
    no message, only rollups (preset ranges of the dashboard and the alerts start there)."""
    return _floor_to(moment, QUARTER_HOUR)


def _ceil_to(moment: datetime, step: timedelta) -> datetime:
    floor = _floor_to(moment, step)
    return floor if floor == moment else floor + step


def _nearest_day(moment: datetime) -> datetime:
    """The UTC midnight nearest to ``moment``."""
    return _floor_to(moment + ONE_DAY / 2, ONE_DAY)


@dataclass(frozen=True)
class _LocalDays:
    """A time series by local day from the rollups: ``daily`` maps each UTC day read to the
    local day it is counted in; each range of ``added`` is read under its own local day (the
    rollup rows or messages in it); each range of ``taken_off`` lies in a UTC day read for the
    local day given with it, but not in that local day, and is taken off it. ``trimmed``: the
    local days something is taken off, with their range."""

    daily: dict[date, date]
    added: list[tuple[datetime, datetime]]
    taken_off: list[tuple[datetime, datetime, date]]
    trimmed: dict[date, tuple[datetime, datetime]]


def _local_midnights(lower: datetime, upper: datetime) -> list[datetime] | None:
    """The local midnights (current time zone) in ``[lower, upper)``, as UTC datetimes; None if
    one does not start a UTC quarter hour (no zone in use today) or local days do not follow
    one another there."""
    zone = timezone.get_current_timezone()
    midnights = []
    day = lower.astimezone(zone).date()
    while True:
        # A midnight that does not exist (DST starting at 00:00) gives the moment of the change.
        midnight = datetime.combine(day, time.min, tzinfo=zone).astimezone(UTC)
        if midnight >= upper:
            return midnights
        day_before = (midnight - timedelta(microseconds=1)).astimezone(zone).date()
        if midnight.astimezone(zone).date() != day or day_before != day - ONE_DAY:
            return None
        if _floor_to(midnight, QUARTER_HOUR) != midnight:
            return None
        if midnight >= lower:
            midnights.append(midnight)
        day += ONE_DAY


def _local_days(
    lower: datetime, upper: datetime, changed: list[tuple[datetime, datetime]]
) -> _LocalDays | None:
    """How to build the local days of ``[lower, upper)`` (None: not from the quarter hours).

    A local day ``[start, end)`` is the UTC days from the UTC midnight nearest to its start to
    the one nearest to its end, plus the rows from its start to that first UTC midnight if it
    starts before it, minus the rows from that UTC midnight to its start if it starts after,
    and the same at its end: at most 12 hours of hourly and quarter-hour rows at each end,
    whatever the zone, DST days (23 or 25 hours) included. A partial day at an edge of the
    range uses the next (previous) UTC midnight instead, so nothing is taken off at an edge
    that is not a local midnight. A day whose UTC days hold an hour changed since the last
    refresh (stale daily rows), or without a whole UTC day, is read whole from the hourly and
    quarter-hour rows and the messages.
    """
    midnights = _local_midnights(lower, upper)
    if midnights is None:
        return None
    zone = timezone.get_current_timezone()
    daily: dict[date, date] = {}
    added: list[tuple[datetime, datetime]] = []
    taken_off: list[tuple[datetime, datetime, date]] = []
    trimmed: dict[date, tuple[datetime, datetime]] = {}
    bounds = list(dict.fromkeys([lower, *midnights, upper]))
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        day = start.astimezone(zone).date()
        first = _nearest_day(start) if start in midnights else _ceil_to(start, ONE_DAY)
        last = _nearest_day(end) if end in midnights else _floor_to(end, ONE_DAY)
        if first >= last or any(lo < last and hi > first for lo, hi in changed):
            added.append((start, end))
            continue
        for n in range((last - first) // ONE_DAY):
            daily[(first + n * ONE_DAY).date()] = day
        if start < first:
            added.append((start, first))
        elif start > first:
            taken_off.append((first, start, day))
        if end > last:
            added.append((last, end))
        elif end < last:
            taken_off.append((end, last, day))
        if start > first or end < last:
            trimmed[day] = (start, end)
    return _LocalDays(daily, added, taken_off, trimmed)


def _split_range(
    start: datetime, end: datetime, changed: list[tuple[datetime, datetime]]
) -> tuple[list[tuple[datetime, datetime]], ...]:
    """``[start, end)`` as the ranges to read from the messages (the hours ``changed`` since
    the last refresh, the bits that are not whole quarter hours), from the hourly rows (whole
    hours) and from the quarter-hour rows (the rest)."""
    messages, hours, quarters = [], [], []
    pieces = [(start, end)]
    for low, high in changed:
        rest = []
        for a, b in pieces:
            if low < b and high > a:
                messages.append((max(a, low), min(b, high)))
                rest += [piece for piece in ((a, low), (high, b)) if piece[0] < piece[1]]
            else:
                rest.append((a, b))
        pieces = rest
    for a, b in pieces:
        first_quarter, last_quarter = _ceil_to(a, QUARTER_HOUR), _floor_to(b, QUARTER_HOUR)
        if first_quarter >= last_quarter:
            messages.append((a, b))
            continue
        messages += [
            piece for piece in ((a, first_quarter), (last_quarter, b)) if piece[0] < piece[1]
        ]
        first_hour, last_hour = _ceil_to(first_quarter, ONE_HOUR), _floor_to(last_quarter, ONE_HOUR)
        if first_hour >= last_hour:
            quarters.append((first_quarter, last_quarter))
            continue
        hours.append((first_hour, last_hour))
        quarters += [
            piece
            for piece in ((first_quarter, first_hour), (last_hour, last_quarter))
            if piece[0] < piece[1]
        ]
    return messages, hours, quarters


def _summed_part(rows: QuerySet[Any], key: Any, sign: int = 1) -> _Part:
    """Rollup rows added up per local day ``key`` (an expression)."""
    summed = {f"sum_{c}": aggregate for c, aggregate in _sum_rollups().items()}
    queryset = rows.order_by().annotate(key_day=key).values("key_day").annotate(**summed)
    return _Part(queryset, {"key_day": "key_day", **{c: f"sum_{c}" for c in _SUMMED}}, sign)


def _day_of_ranges(column: str, ranges: list[tuple[datetime, datetime, date]]) -> Case:
    """The local day given with the range holding ``column``."""
    whens = [
        When(**{f"{column}__gte": start, f"{column}__lt": end}, then=Value(day))
        for start, end, day in ranges
    ]
    return Case(*whens, output_field=DateField())


def _local_day_parts(filters: ReportFilters, local: _LocalDays, plan: _Plan) -> list[_Part]:
    """The rows (signed) that add up to the local days of ``local``."""
    dimensions = {
        name: getattr(filters, name)
        for name in ROLLUP_DIMENSIONS
        if getattr(filters, name) is not None
    }
    tables = {"hour": HourlyRollup, "start": QuarterHourRollup}
    parts = []
    if local.daily:
        daily = DailyRollup.objects.using(plan.db).filter(day__in=list(local.daily), **dimensions)
        whens = [When(day=utc, then=Value(day)) for utc, day in local.daily.items()]
        parts.append(_summed_part(daily, Case(*whens, output_field=DateField())))
    messages: list[tuple[datetime, datetime]] = []
    added: dict[str, list[tuple[datetime, datetime]]] = {"hour": [], "start": []}
    for start, end in local.added:
        in_messages, hours, quarters = _split_range(start, end, plan.changed)
        messages += in_messages
        added["hour"] += hours
        added["start"] += quarters
    taken_off: dict[str, list[tuple[datetime, datetime, date]]] = {"hour": [], "start": []}
    for start, end, day in local.taken_off:
        # Whole quarter hours of unchanged days (see _local_days): nothing from the messages.
        _, hours, quarters = _split_range(start, end, [])
        taken_off["hour"] += [(a, b, day) for a, b in hours]
        taken_off["start"] += [(a, b, day) for a, b in quarters]
    for column, model in tables.items():
        rows = model.objects.using(plan.db).filter(**dimensions)
        if added[column]:
            # Each row lies in one local day: its own.
            parts.append(
                _summed_part(rows.filter(in_hour_ranges(added[column], column)), TruncDate(column))
            )
        if taken_off[column]:
            ranges = [(a, b) for a, b, _ in taken_off[column]]
            parts.append(
                _summed_part(
                    rows.filter(in_hour_ranges(ranges, column)),
                    _day_of_ranges(column, taken_off[column]),
                    sign=-1,
                )
            )
    if messages:
        edges = replace(filters, sent_after=None, sent_before=None).apply(
            Message.objects.using(plan.db)
        )
        parts.append(_messages_part(edges.filter(in_hour_ranges(messages, "sent_at")), ["day"]))
    return parts


def _local_day_sums(filters: ReportFilters, plan: _Plan) -> dict[Any, _Sums] | None:
    """Sums per local day (the current time zone's) from the daily rows, plus or minus the
    hourly and quarter-hour rows between UTC and local midnights (``_local_days``), in one
    query. None in a zone whose midnights do not start a quarter hour."""
    lower, upper = filters.sent_after, filters.sent_before
    if lower is None or upper is None:
        messages = Message.objects.using(plan.db)
        oldest, newest = messages.aggregate(Min("sent_at"), Max("sent_at")).values()
        if oldest is None:
            return {}
        lower = lower or oldest
        upper = upper or newest + timedelta(microseconds=1)
    if lower >= upper:
        return {}
    local = _local_days(lower, upper, plan.changed)
    if local is None:
        return None
    days = _local_day_read(filters, local, plan)
    # A day something was taken off has the maximum time to confirm of its UTC days, which is
    # its own unless the part taken off holds it too. The maximum bounds the highest bucket of
    # the histogram: where the median or p90 falls in it, read that day's own from its rows.
    exact = [
        day
        for day, sums in days.items()
        if sums.taken_off_maximum is not None
        and sums.maximum is not None
        and sums.taken_off_maximum >= sums.maximum
        and _maximum_matters(sums)
    ]
    if exact:
        whole = _LocalDays({}, [local.trimmed[day] for day in exact], [], {})
        for day, sums in _local_day_read(filters, whole, plan).items():
            days[day].maximum = sums.maximum
    return days


def _local_day_read(filters: ReportFilters, local: _LocalDays, plan: _Plan) -> dict[Any, _Sums]:
    statement = _grouped_sql(_local_day_parts(filters, local, plan), ["day"], plan.db)
    return _run_grouped(statement, ["day"], plan.db)["day"]


def _maximum_matters(sums: _Sums) -> bool:
    """Whether a percentile of ``sums`` falls in its highest non-empty bucket, the one the
    maximum bounds (``histogram_percentile``)."""
    counts = sums.histogram
    size = sum(counts)
    if not size:
        return False
    top = max(index for index, count in enumerate(counts) if count)
    below = size - counts[top]
    return any((size - 1) * n / d >= below for n, d in PERCENTILES.values())


def _report_of(filters: ReportFilters, by: str | None, sums: dict[Any, _Sums]) -> Report:
    totals = sums.get(None) if by is None else None
    rows = []
    if by is not None:
        rows = [
            ReportRow(key=key, totals=group.totals())
            for key, group in sums.items()
            if group.counts["attempted"]
        ]
    return Report(
        filters=filters,
        by=by,
        totals=(totals or _Sums.of(dict.fromkeys(_SUMMED))).totals(),
        rows=_order_rows(by, rows) if by else [],
    )


def _rollup_report(filters: ReportFilters, by: str | None, plan: _Plan) -> Report:
    sums = _grouped_sums(filters, [None, by], plan)
    report = _report_of(filters, by, sums.get(by, {}))
    return replace(report, totals=_report_of(filters, None, sums[None]).totals)


@dataclass(frozen=True)
class ReportSet:
    """Several reports over the same filters, and the distribution of time to confirm."""

    #: By breakdown (None: the totals only, as ``conversion_report(filters)``).
    reports: dict[str | None, Report]
    histogram: list[HistogramBucket]

    @property
    def totals(self) -> Totals:
        return next(iter(self.reports.values())).totals


def conversion_reports(
    filters: ReportFilters | None = None,
    groupings: Sequence[str | None] = (None,),
    *,
    source: Source = "auto",
    using: str | None = None,
) -> ReportSet:
    """``conversion_report(filters, by)`` for each ``by`` in ``groupings`` and the histogram
    of ``confirm_time_histogram(filters)``, the same numbers, read together.

    From the rollups it is one statement (``GROUP BY GROUPING SETS`` on PostgreSQL) whatever the
    number of groupings, or two when the time series cannot use the daily rollups (hours, or
    days in a time zone other than UTC) and the other groupings can: those then read the daily
    rows, and only the time series the hourly ones. When the rollups cannot answer, one report
    after the other from the messages.
    """
    filters = filters or ReportFilters()
    for by in groupings:
        if by is not None and by not in BREAKDOWNS and by != HOUR:
            raise ValueError(f"unknown breakdown {by!r}; expected one of {', '.join(BREAKDOWNS)}")
    db = reports_database(using)
    plan = _plan(filters, None, None, source, db)
    if plan is None:
        return ReportSet(
            reports={
                by: conversion_report(filters, by, source="raw", using=db) for by in groupings
            },
            histogram=confirm_time_histogram(filters, source="raw", using=db),
        )
    times = [by for by in groupings if by in ("day", HOUR)]
    others = [by for by in groupings if by not in times]
    # A series the quarter-hour totals give, _grouped_sums reads apart by itself.
    from_totals = bool(times) and _totals_range(filters, plan) is not None
    if not from_totals and not _daily_rows_answer(times) and any(by is not None for by in others):
        sums = _grouped_sums(filters, [None, *others], plan)
        for by in times:
            sums[by] = _grouped_sums(filters, [by], _plan_for(plan, filters, by))[by]
    else:
        sums = _grouped_sums(
            filters, [None, *groupings], _plan_for(plan, filters, next(iter(times), None))
        )
    totals = _report_of(filters, None, sums[None])
    reports = {}
    for by in groupings:
        report = _report_of(filters, by, sums[by])
        reports[by] = replace(report, totals=totals.totals)
    return ReportSet(reports=reports, histogram=_histogram(sums[None].get(None)))


def _histogram(sums: _Sums | None) -> list[HistogramBucket]:
    counts = sums.histogram if sums else [0] * len(CONFIRM_BUCKET_FIELDS)
    return [
        HistogramBucket(lower=lower or 0.0, upper=upper, count=count)
        for count, (lower, upper) in zip(counts, _bucket_bounds(), strict=True)
    ]


@dataclass(frozen=True)
class HistogramBucket:
    """Confirmed messages whose time to confirm is in ``[lower, upper)`` seconds."""

    lower: float
    #: None for the last, open bucket.
    upper: float | None
    count: int


def confirm_time_histogram(
    filters: ReportFilters | None = None, *, source: Source = "auto", using: str | None = None
) -> list[HistogramBucket]:
    """The distribution of time to confirm, in the rollups' buckets (``CONFIRM_BUCKETS``)."""
    filters = filters or ReportFilters()
    db = reports_database(using)
    plan = _plan(filters, None, None, source, db)
    if plan is not None:
        return _histogram(_grouped_sums(filters, [None], plan)[None].get(None))
    messages = filters.apply(Message.objects.using(db))
    row = next(iter(with_rollup_aggregates(messages)), None)
    return _histogram(_Sums.of(row) if row else None)


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
    "ReportSet",
    "ReportRow",
    "Source",
    "Totals",
    "confirm_time_histogram",
    "conversion_report",
    "conversion_reports",
    "data_as_of",
    "floor_quarter_hour",
    "histogram_percentile",
    "reports_database",
    "with_time_range",
]
