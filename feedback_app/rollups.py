"""Refresh ``QuarterHourRollup``, ``HourlyRollup`` and ``DailyRollup`` (the conversion counts per
15 minutes, hour and UTC day and dimensions that reports read) and ``QuarterHourTotal`` (the
quarter hours over all dimensions).

A refresh recomputes, set-based (one ``INSERT ... SELECT ... GROUP BY``), the quarter hours of
every hour of sending that holds a message updated since the last refresh: messages change
after they are sent (delivery receipts, confirmations, expiry), so an hour is never final. Then,
in the same transaction, those quarter hours are added up over the dimensions, the hours again
from their quarter hours, and the UTC days holding them from the hourly rows (one more
``INSERT ... SELECT ... GROUP BY`` each). A django-q2 schedule runs it every minute; reports
read the messages of hours changed since, so they never wait for it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, NotSupportedError, connection, transaction
from django.db.models import DateTimeField, F, Func, Max, Model, QuerySet, Sum
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from .models import (
    CONFIRM_BUCKET_FIELDS,
    DailyRollup,
    HourlyRollup,
    Message,
    QuarterHourRollup,
    QuarterHourTotal,
    RollupState,
)
from .reports import (
    changed_hours,
    day_ranges,
    floor_hour,
    hour_ranges,
    in_hour_ranges,
    with_rollup_aggregates,
)

#: How far the watermark stays behind the start of a refresh. A transaction that wrote
#: ``updated_at`` just before the refresh began but committed after it read the messages is
#: invisible to that refresh; keeping the watermark this far back makes the next refresh (and
#: every report until then) read those hours again. Longer-running writes are not expected.
WATERMARK_LAG = timedelta(minutes=5)

_DIMENSIONS = ("provider", "purpose", "country", "sender", "channel")


_COUNTERS = (
    "attempted",
    "delivered_ok",
    "confirmed",
    "confirmed_late",
    "failed",
    "expired",
    "pending",
    "superseded",
    "verifications",
    "verifications_converted",
    "resends",
    "verifications_resent",
    *CONFIRM_BUCKET_FIELDS,
)


class TruncQuarterHour(Func):
    """The start of the UTC quarter hour (:00, :15, :30, :45) holding a datetime, in SQL."""

    output_field = DateTimeField()

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        raise NotSupportedError(f"quarter hours are not written for {connection.vendor}")

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # date_bin (PostgreSQL 14+) counts 15-minute steps from a UTC midnight.
        template = "date_bin('15 minutes', %(expressions)s, TIMESTAMPTZ '2000-01-01 00:00+00')"
        return super().as_sql(compiler, connection, template=template, **extra)

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # Datetimes are UTC text there: keep "YYYY-MM-DD HH:", floor the minutes to 15. A "%"
        # is doubled once for the template, once for the backend's parameter style.
        template = (
            "(strftime('%%%%Y-%%%%m-%%%%d %%%%H:', %(expressions)s) "
            "|| printf('%%%%02d', CAST(strftime('%%%%M', %(expressions)s) AS INTEGER) / 15 * 15)"
            " || ':00')"
        )
        return super().as_sql(compiler, connection, template=template, **extra)


def _insert_select(model: type[Model], select: QuerySet, renamed: dict[str, str]) -> int:
    """INSERT INTO ``model``'s table the rows of ``select`` (one INSERT ... SELECT).

    ``renamed`` maps the SELECT's aliases to field names; other aliases are field names.
    """
    compiler = select.query.get_compiler(connection=connection)
    sql, params = compiler.as_sql()
    aliases = [alias for _, _, alias in compiler.select]
    columns = [model._meta.get_field(renamed.get(a, a)).column for a in aliases]
    quote = connection.ops.quote_name
    insert = (
        f"INSERT INTO {quote(model._meta.db_table)} "  # noqa: S608 - names from meta
        f"({', '.join(quote(c) for c in columns)}) {sql}"
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, params)
        return cursor.rowcount


def _insert_quarters(messages: QuerySet[Message]) -> int:
    """INSERT the quarter-hour rows of ``messages`` with one INSERT ... SELECT; returns the
    count."""
    select = with_rollup_aggregates(
        messages, TruncQuarterHour("sent_at"), *(F(name) for name in _DIMENSIONS)
    )
    # The SELECT's columns in order: group_0 is the quarter hour, group_1.. the dimensions,
    # then one aggregate per rollup column under the column's own name.
    renamed = {"group_0": "start", **{f"group_{i + 1}": name for i, name in enumerate(_DIMENSIONS)}}
    # In time order (see _insert_sums).
    return _insert_select(QuarterHourRollup, select.order_by("group_0"), renamed)


def _insert_hourly(quarters: QuerySet[QuarterHourRollup]) -> int:
    """INSERT the hourly rows adding up ``quarters`` per UTC hour and dimensions."""
    return _insert_sums(HourlyRollup, quarters, "hour", TruncHour("start", tzinfo=UTC))


def _insert_daily(hourly: QuerySet[HourlyRollup]) -> int:
    """INSERT the daily rows adding up ``hourly`` per UTC day and dimensions; returns the count."""
    return _insert_sums(DailyRollup, hourly, "day", TruncDate("hour", tzinfo=UTC))


def _insert_totals(quarters: QuerySet[QuarterHourRollup]) -> int:
    """INSERT the totals of ``quarters`` per quarter hour, over every combination of
    dimensions; returns the count."""
    return _insert_sums(QuarterHourTotal, quarters, "start", F("start"), dimensions=())


def _insert_sums(
    model: type[Model],
    rows: QuerySet[Any],
    time: str,
    period: Any,
    dimensions: tuple[str, ...] = _DIMENSIONS,
) -> int:
    """INSERT into ``model`` the ``rows`` added up per ``period`` (its ``time`` field) and
    ``dimensions``, with one INSERT ... SELECT; returns the count."""
    select = (
        rows.order_by()
        .annotate(sum_period=period)
        .values("sum_period", *dimensions)
        .annotate(
            **{f"sum_{name}": Sum(name) for name in _COUNTERS},
            sum_confirm_seconds_max=Max("confirm_seconds_max"),
        )
        # Written in time order, so the rows of one period share a few pages: a report reading
        # a day of hourly rows after a full refresh reads tens of pages, not thousands.
        .order_by("sum_period")
    )
    renamed = {"sum_period": time} | {
        f"sum_{name}": name for name in (*_COUNTERS, "confirm_seconds_max")
    }
    return _insert_select(model, select, renamed)


def refresh(*, full: bool = False) -> int:
    """Recompute the rollups of every hour changed since the last refresh (all with ``full``).

    Returns the number of hours recomputed. Safe to run concurrently: the state row is locked,
    so refreshes run one after the other.
    """
    started = timezone.now()
    with transaction.atomic():
        state = RollupState.objects.select_for_update().filter(pk=1).first()
        if state is None or full:
            QuarterHourRollup.objects.all().delete()
            QuarterHourTotal.objects.all().delete()
            HourlyRollup.objects.all().delete()
            DailyRollup.objects.all().delete()
            _insert_quarters(Message.objects.all())
            _insert_totals(QuarterHourRollup.objects.all())
            _insert_hourly(QuarterHourRollup.objects.all())
            _insert_daily(HourlyRollup.objects.all())
            hours = None
        else:
            hours = hour_ranges(changed_hours(state.watermark, using=DEFAULT_DB_ALIAS))
            _recompute(hours)
        RollupState.objects.update_or_create(
            pk=1, defaults={"watermark": started - WATERMARK_LAG, "refreshed_at": started}
        )
    if hours is None:
        return HourlyRollup.objects.values("hour").distinct().count()
    return _count_hours(hours)


def recompute(ranges: list[tuple[datetime, datetime]]) -> int:
    """Recompute the rollups of the UTC hours touching the [start, end) ``ranges`` now.

    For writes that ``updated_at`` does not show: rows inserted with an old ``updated_at``
    (``demo.seed``), rows deleted (``retention.purge``). Call it in the transaction of the
    write, so the rollups change with it. Nothing to do before the first refresh (reports read
    the messages until then). Returns the number of hours recomputed.
    """
    with transaction.atomic():
        # The refresh's lock: a refresh and a recompute of the same hours run one after the other.
        if not RollupState.objects.select_for_update().filter(pk=1).exists():
            return 0
        touched = set()
        for start, end in ranges:
            hour = floor_hour(start)
            while hour < end:
                touched.add(hour)
                hour += timedelta(hours=1)
        hours = hour_ranges(sorted(touched))
        _recompute(hours)
    return _count_hours(hours)


def _count_hours(hours: list[tuple[datetime, datetime]]) -> int:
    return sum(int((end - start) / timedelta(hours=1)) for start, end in hours)


def _recompute(hours: list[tuple[datetime, datetime]]) -> None:
    """Recompute the quarter-hour and hourly rows of ``hours`` (whole UTC hours), then the days
    holding them."""
    if not hours:
        return
    QuarterHourRollup.objects.filter(in_hour_ranges(hours, "start")).delete()
    _insert_quarters(Message.objects.filter(in_hour_ranges(hours, "sent_at")))
    QuarterHourTotal.objects.filter(in_hour_ranges(hours, "start")).delete()
    _insert_totals(QuarterHourRollup.objects.filter(in_hour_ranges(hours, "start")))
    HourlyRollup.objects.filter(in_hour_ranges(hours, "hour")).delete()
    _insert_hourly(QuarterHourRollup.objects.filter(in_hour_ranges(hours, "start")))
    days = day_ranges(hours)
    DailyRollup.objects.filter(
        day__in=[
            start.date() + timedelta(days=n)
            for start, end in days
            for n in range((end - start).days)
        ]
    ).delete()
    _insert_daily(HourlyRollup.objects.filter(in_hour_ranges(days, "hour")))


def last_refresh() -> datetime | None:
    """When the rollups were last refreshed (None: never)."""
    return RollupState.objects.filter(pk=1).values_list("refreshed_at", flat=True).first()
