"""Hourly and daily rollups: reports read from them agree with reports read from the messages."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import F, Sum
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app import demo, retention, rollups, services
from feedback_app.models import (
    CONFIRM_BUCKETS,
    DailyRollup,
    HourlyRollup,
    ProviderCall,
    QuarterHourRollup,
    QuarterHourTotal,
)
from feedback_app.reports import (
    BREAKDOWNS,
    HOUR,
    ReportFilters,
    confirm_time_histogram,
    conversion_report,
    conversion_reports,
    floor_hour,
    histogram_percentile,
    rollup_state,
    same_rollup_state,
    split_hours,
)
from feedback_app.states import CallState, Delivery

from .factories import NUMBERS, make_message
from .statements import statements

pytestmark = pytest.mark.django_db

COUNTS = (
    "attempted",
    "delivered_ok",
    "confirmed",
    "confirmed_late",
    "failed",
    "expired",
    "pending",
    "conversion_rate",
    "delivery_rate",
)


def counts(totals) -> dict:
    return {name: getattr(totals, name) for name in COUNTS}


def bucket_of(seconds: float) -> int:
    return sum(1 for edge in CONFIRM_BUCKETS if seconds >= edge)


@pytest.fixture
def history(clock):
    """Two days of messages in several countries, purposes and outcomes; then a refresh."""
    start = clock.now - timedelta(hours=50)
    countries = ("US", "GB", "DE", "BR")
    for index in range(120):
        sent = start + timedelta(minutes=25 * index)
        message = make_message(
            sent_at=sent,
            to=NUMBERS[countries[index % 4]],
            purpose=("otp", "login")[index % 2],
            sender=("", "ACME")[index % 3 == 0],
            delivery_status=(Delivery.DELIVERED, Delivery.UNDELIVERED, Delivery.SENT)[index % 3],
        )
        if index % 5 in (0, 1, 2):
            services.confirm(message, at=sent + timedelta(seconds=3 + 17 * (index % 40)))
        elif index % 5 == 3:
            services.fail(message, at=sent + timedelta(seconds=30))
    services.expire_overdue()
    clock.advance(minutes=10)
    assert rollups.refresh() > 40
    return start


FILTERS = [
    ReportFilters(),
    ReportFilters(country="GB"),
    ReportFilters(purpose="login", sender="ACME"),
    ReportFilters(provider="locmem", channel="sms"),
]


@pytest.mark.parametrize("filters", FILTERS)
@pytest.mark.parametrize("by", [None, HOUR, *BREAKDOWNS])
def test_rollups_and_messages_give_the_same_counts(history, filters, by):
    raw = conversion_report(filters, by, source="raw")
    rolled = conversion_report(filters, by, source="rollups")
    assert counts(rolled.totals) == counts(raw.totals)
    assert [(row.key, counts(row.totals)) for row in rolled.rows] == [
        (row.key, counts(row.totals)) for row in raw.rows
    ]


def test_a_time_range_cutting_hours_reads_the_partial_hours_from_messages(history, clock):
    filters = ReportFilters(
        sent_after=history + timedelta(hours=3, minutes=13),
        sent_before=clock.now - timedelta(hours=7, minutes=41),
    )
    for by in (None, "day", "country"):
        raw = conversion_report(filters, by, source="raw")
        rolled = conversion_report(filters, by, source="rollups")
        assert counts(rolled.totals) == counts(raw.totals)
        assert [counts(row.totals) for row in rolled.rows] == [
            counts(row.totals) for row in raw.rows
        ]


def test_percentiles_from_the_histogram_fall_in_the_bucket_of_the_exact_answer(history):
    for by in (None, "country"):
        raw = conversion_report(by=by, source="raw")
        rolled = conversion_report(by=by, source="rollups")
        pairs = [(raw.totals, rolled.totals)] + [
            (a.totals, b.totals) for a, b in zip(raw.rows, rolled.rows, strict=True)
        ]
        for exact, estimate in pairs:
            for name in ("median_seconds_to_confirm", "p90_seconds_to_confirm"):
                exact_value, estimated = getattr(exact, name), getattr(estimate, name)
                # percentile_cont may interpolate across a bucket edge: then either side.
                assert abs(bucket_of(estimated) - bucket_of(exact_value)) <= 1, name


def test_a_confirmation_after_the_refresh_counts_at_once(history, clock):
    before = conversion_report(source="rollups").totals
    message = make_message(sent_at=history + timedelta(hours=1, minutes=5))
    services.confirm(message, at=message.sent_at + timedelta(seconds=12))
    after = conversion_report(source="rollups").totals
    assert after.attempted == before.attempted + 1
    assert after.confirmed == before.confirmed + 1
    assert counts(after) == counts(conversion_report(source="raw").totals)


def test_a_refresh_recomputes_only_the_hours_that_changed(history, clock):
    assert rollups.refresh() == 0
    message = make_message(sent_at=history + timedelta(hours=2, minutes=1))
    clock.advance(minutes=10)
    assert rollups.refresh() == 1
    hour = message.sent_at.replace(minute=0, second=0, microsecond=0)
    row = HourlyRollup.objects.filter(hour=hour, country="US", purpose="otp", sender="").first()
    assert row is not None and row.pending >= 1
    assert counts(conversion_report(source="rollups").totals) == counts(
        conversion_report(source="raw").totals
    )


def test_an_expiry_run_for_an_earlier_now_is_seen_by_the_next_refresh(history, clock):
    """A long expiry run stamps each batch with its own time: a batch committed after the
    watermark passed the run's ``now`` must still be recomputed."""
    for minutes in range(5):
        make_message(sent_at=history + timedelta(hours=3, minutes=minutes))
    clock.advance(hours=2)  # past their deadline
    rollups.refresh()
    clock.advance(minutes=10)
    # The run began before the watermark (the refresh's start, less WATERMARK_LAG).
    assert services.expire_overdue(now=clock.now - timedelta(minutes=20)) == 5
    clock.advance(minutes=10)
    rollups.refresh()
    assert counts(conversion_report(source="rollups").totals) == counts(
        conversion_report(source="raw").totals
    )


def test_full_refresh_rebuilds_the_same_rows(history):
    def rows() -> list[tuple]:
        return list(
            HourlyRollup.objects.order_by("hour", "country", "purpose", "sender").values_list()
        )

    before = [row[1:] for row in rows()]
    rollups.refresh(full=True)
    assert [row[1:] for row in rows()] == before


def test_the_histogram_counts_every_confirmed_message_once(history):
    buckets = confirm_time_histogram(source="rollups")
    assert [b.count for b in buckets] == [b.count for b in confirm_time_histogram(source="raw")]
    assert sum(b.count for b in buckets) == conversion_report().totals.confirmed
    assert buckets[0].lower == 0 and buckets[-1].upper is None


def test_filters_the_rollups_cannot_answer_read_the_messages(history):
    with pytest.raises(ValueError, match="feedback or delivery status"):
        conversion_report(ReportFilters(feedback="confirmed"), source="rollups")
    auto = conversion_report(ReportFilters(delivery_status="delivered"))
    assert auto.totals.attempted == auto.totals.delivered_ok > 0


def test_before_any_refresh_reports_read_the_messages():
    make_message()
    with pytest.raises(ValueError, match="never refreshed"):
        conversion_report(source="rollups")
    assert conversion_report().totals.attempted == 1


@pytest.mark.parametrize(
    ("histogram", "maximum", "fraction", "expected"),
    [
        # One value in [5, 7]: the middle on a log scale.
        ([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0], 7.0, 0.5, 35**0.5),
        ([0] * 10 + [1], 5000.0, 0.5, (3600 * 5000) ** 0.5),  # the open bucket ends at the largest
        # Rank 1.5 of 4 in the first bucket, which starts at 0: linear, 5 * (1.5 + 0.5) / 3.
        ([3, 1] + [0] * 9, 9.0, 0.5, 5 * 2 / 3),
        # Rank 2.7 of 4 in [30, 60), bounded by the largest time (59): share (2.7 + 0.5) / 4.
        ([0, 0, 0, 0, 4] + [0] * 6, 59.0, 0.9, 30 * (59 / 30) ** 0.8),
        ([0] * 11, None, 0.5, None),
    ],
)
def test_histogram_percentile(histogram, maximum, fraction, expected):
    assert histogram_percentile(histogram, maximum, fraction) == pytest.approx(expected)


def reads_daily(queries) -> bool:
    return any(DailyRollup._meta.db_table in query["sql"] for query in queries)


def reads_totals(queries) -> bool:
    return any(QuarterHourTotal._meta.db_table in query["sql"] for query in queries)


#: A dimension filter every message of these tests matches (factories' provider): reports then
#: read the rollup rows per dimension, not the quarter-hour totals.
ALL_LOCMEM = {"provider": "locmem"}


def test_quarter_hour_totals_add_up_the_quarter_hour_rows(history):
    per_quarter = QuarterHourRollup.objects.values("start").annotate(
        n=Sum("attempted"), c=Sum("confirmed"), h=Sum("confirm_lt_1m")
    )
    assert sorted((row["start"], row["n"], row["c"], row["h"]) for row in per_quarter) == sorted(
        QuarterHourTotal.objects.values_list("start", "attempted", "confirmed", "confirm_lt_1m")
    )


def test_daily_rollups_add_up_the_hourly_ones(history):
    def per_day(model, time):
        rows = model.objects.annotate(d=time).values("d", "country", "purpose", "sender")
        return sorted(
            (row["d"], row["country"], row["purpose"], row["sender"], row["n"], row["c"])
            for row in rows.annotate(n=Sum("attempted"), c=Sum("confirm_lt_1m"))
        )

    assert DailyRollup.objects.count() >= 3  # 50 hours touch three UTC days at least
    assert per_day(DailyRollup, F("day")) == per_day(HourlyRollup, TruncDate("hour", tzinfo=UTC))


@pytest.mark.parametrize("by", [None, "day", "country", "sender"])
def test_a_range_cutting_through_days_reads_whole_days_from_daily_rollups(history, clock, by):
    filters = ReportFilters(
        sent_after=history + timedelta(hours=1, minutes=7),
        sent_before=clock.now - timedelta(minutes=3),
        **ALL_LOCMEM,
    )
    raw = conversion_report(filters, by, source="raw")
    with CaptureQueriesContext(connection) as queries:
        rolled = conversion_report(filters, by, source="rollups")
    assert reads_daily(queries.captured_queries)
    # The edges' whole quarter hours (from :15 after the 7 past) from the quarter-hour rows.
    assert reads_table(QuarterHourRollup, queries.captured_queries)
    assert counts(rolled.totals) == counts(raw.totals)
    assert [(row.key, counts(row.totals)) for row in rolled.rows] == [
        (row.key, counts(row.totals)) for row in raw.rows
    ]


def test_changes_after_the_refresh_in_a_day_read_whole_count_at_once(history, clock):
    # A whole UTC day inside the history: its daily rows exist, then it changes.
    day = (history + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    assert DailyRollup.objects.filter(day=day.date()).exists()
    message = make_message(sent_at=day + timedelta(hours=5, minutes=30), to=NUMBERS["GB"])
    services.confirm(message, at=message.sent_at + timedelta(seconds=40))
    old = HourlyRollup.objects.filter(hour__lt=day + timedelta(hours=3)).first()
    for by in (None, "day", "country"):
        assert [(r.key, counts(r.totals)) for r in conversion_report(by=by).rows] == [
            (r.key, counts(r.totals)) for r in conversion_report(by=by, source="raw").rows
        ]
        assert counts(conversion_report(by=by).totals) == counts(
            conversion_report(by=by, source="raw").totals
        )
    clock.advance(minutes=10)
    assert rollups.refresh() == 1
    # The day was added up again: hours of it not changed are still counted once.
    assert HourlyRollup.objects.filter(pk=old.pk).exists()
    day_rows = DailyRollup.objects.filter(day=day.date())
    hour_rows = HourlyRollup.objects.filter(hour__gte=day, hour__lt=day + timedelta(days=1))
    assert day_rows.aggregate(n=Sum("attempted")) == hour_rows.aggregate(n=Sum("attempted"))
    assert counts(conversion_report().totals) == counts(conversion_report(source="raw").totals)


def test_days_of_another_time_zone_are_utc_days_plus_or_minus_quarter_hours(history, clock):
    filters = ReportFilters(
        sent_after=history + timedelta(hours=2), sent_before=clock.now, **ALL_LOCMEM
    )
    with timezone.override("America/New_York"):
        raw = conversion_report(filters, "day", source="raw")
        with CaptureQueriesContext(connection) as queries:
            rolled = conversion_report(filters, "day", source="rollups")
        assert reads_daily(queries.captured_queries)
        assert [(row.key, counts(row.totals)) for row in rolled.rows] == [
            (row.key, counts(row.totals)) for row in raw.rows
        ]
        # Other breakdowns still read whole (UTC) days.
        with CaptureQueriesContext(connection) as queries:
            by_country = conversion_report(filters, "country", source="rollups")
        assert reads_daily(queries.captured_queries)
        assert counts(by_country.totals) == counts(raw.totals)


@pytest.mark.parametrize(
    ("time", "zone", "reads"),
    [
        ("day", "UTC", 1),
        (HOUR, "UTC", 2),
        ("day", "America/New_York", 2),
        ("day", "Asia/Kolkata", 2),
    ],
)
def test_several_reports_read_together_give_the_numbers_of_each(history, clock, time, zone, reads):
    filters = ReportFilters(
        sent_after=history + timedelta(minutes=40), sent_before=clock.now, **ALL_LOCMEM
    )
    groupings = [time, "country", "provider", "purpose", "sender", "channel"]
    with timezone.override(zone):
        with CaptureQueriesContext(connection) as queries:
            together = conversion_reports(filters, groupings)
        # The watermark, the hours changed since, then one grouped read; two when the time
        # series is not UTC days: the series of hours from the hourly rows, local days from
        # the daily rows plus or minus the hours to the local midnights.
        grouped = statements(queries.captured_queries)[2:]
        assert len(grouped) == reads
        assert reads_daily(grouped[:1])
        assert reads_daily(grouped[1:]) == (time == "day" and zone != "UTC")
        assert not reads_totals(grouped)
        check_several_reports(filters, groupings, together)


@pytest.mark.parametrize(
    ("time", "zone"),
    [
        ("day", "UTC"),
        (HOUR, "UTC"),
        ("day", "America/New_York"),
        ("day", "Asia/Kolkata"),
        (HOUR, "Asia/Kathmandu"),
        ("day", "Pacific/Chatham"),
    ],
)
def test_without_a_dimension_filter_the_series_and_totals_come_from_the_quarter_hour_totals(
    history, clock, time, zone
):
    """The dashboard's default view: its series, totals and histogram from 96 rows a day, in any
    zone on the 15-minute grain; the breakdowns from the daily rows."""
    filters = ReportFilters(sent_after=history + timedelta(minutes=40), sent_before=clock.now)
    groupings = [time, "country", "provider", "purpose", "sender", "channel"]
    with timezone.override(zone):
        with CaptureQueriesContext(connection) as queries:
            together = conversion_reports(filters, groupings)
        series, breakdowns = statements(queries.captured_queries)[2:]
        assert reads_totals([series]) and not reads_daily([series])
        assert "key_country" not in series["sql"]
        assert reads_daily([breakdowns]) and not reads_totals([breakdowns])
        assert "key_day" not in breakdowns["sql"] and "key_hour" not in breakdowns["sql"]
        check_several_reports(filters, groupings, together)


def check_several_reports(filters, groupings, together) -> None:
    for by in groupings:
        alone = conversion_report(filters, by)
        assert together.reports[by] == alone
        raw = conversion_report(filters, by, source="raw")
        assert [(row.key, counts(row.totals)) for row in alone.rows] == [
            (row.key, counts(row.totals)) for row in raw.rows
        ]
    assert together.histogram == confirm_time_histogram(filters)
    assert together.histogram == confirm_time_histogram(filters, source="raw")


def test_several_reports_from_the_messages_when_the_rollups_cannot_answer(history):
    filters = ReportFilters(feedback="confirmed")
    together = conversion_reports(filters, [None, "country"])
    assert together.reports["country"] == conversion_report(filters, "country")
    assert together.totals == conversion_report(filters).totals


def test_the_changed_hours_are_read_with_the_watermark_as_a_plain_value(history, clock):
    make_message(sent_at=history + timedelta(hours=4, minutes=2))
    with CaptureQueriesContext(connection) as queries:
        watermark, changed = rollup_state()
    assert watermark is not None and len(changed) == 1
    watermark_query, hours_query = [query["sql"] for query in queries.captured_queries]
    assert "rollupstate" in watermark_query
    # No subquery, so PostgreSQL estimates the recent rows and reads them through the index.
    assert hours_query.count("SELECT") == 1 and "rollupstate" not in hours_query


def test_a_page_of_reads_shares_one_rollup_state(history):
    with CaptureQueriesContext(connection) as queries, same_rollup_state():
        conversion_reports(ReportFilters(), ["country"])
        conversion_reports(ReportFilters(), ["sender"])
        conversion_report(ReportFilters(country="GB"))
    assert len(statements(queries.captured_queries)) == 2 + 3  # the state once, a read each


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham"])
@pytest.mark.parametrize("by", ["day", HOUR])
def test_days_and_hours_of_a_zone_offset_by_a_fraction_of_an_hour_use_the_rollups(
    history, clock, zone, by
):
    filters = ReportFilters(sent_after=history + timedelta(minutes=50), sent_before=clock.now)
    with timezone.override(zone):
        rolled = conversion_report(filters, by, source="rollups")
        raw = conversion_report(filters, by, source="raw")
        assert [(row.key, counts(row.totals)) for row in rolled.rows] == [
            (row.key, counts(row.totals)) for row in raw.rows
        ]
        # Each group's figures are those of a report over that group's hours alone.
        for row in rolled.rows[:3]:
            start = (
                row.key
                if by == HOUR
                else timezone.make_aware(datetime.combine(row.key, datetime.min.time()))
            )
            end = start + (timedelta(hours=1) if by == HOUR else timedelta(days=1))
            alone = conversion_report(
                ReportFilters(
                    sent_after=max(start, filters.sent_after),
                    sent_before=min(end, filters.sent_before),
                )
            )
            assert row.totals == alone.totals
        # The totals are those of the report without a breakdown.
        assert rolled.totals == conversion_report(filters).totals


def test_split_hours_are_the_hours_around_local_midnights():
    start = datetime(2025, 4, 1, tzinfo=UTC)
    with timezone.override("Asia/Kolkata"):
        days = split_hours("day", start, start + timedelta(days=3))
        hours = split_hours(HOUR, start, start + timedelta(hours=5))
    # Midnight in Kolkata is 18:30 UTC.
    assert days == [datetime(2025, 4, d, 18, tzinfo=UTC) for d in (1, 2, 3)]
    assert hours == [start + timedelta(hours=n) for n in range(5)]
    assert split_hours("country", start, start + timedelta(days=3)) == []
    with timezone.override("America/New_York"):
        assert split_hours("day", start, start + timedelta(days=3)) == []


def test_seeding_demo_history_after_a_refresh_counts_at_once(history, clock):
    before = conversion_report().totals.attempted
    demo.seed(days=3, messages=300, rng_seed=99, now=clock.now)
    for source in ("rollups", "raw"):
        assert conversion_report(source=source).totals.attempted == before + 300
    assert counts(conversion_report(source="rollups").totals) == counts(
        conversion_report(source="raw").totals
    )
    # Still right after the next refresh, which does not see the seeded rows as changes.
    clock.advance(minutes=10)
    rollups.refresh()
    assert counts(conversion_report(source="rollups").totals) == counts(
        conversion_report(source="raw").totals
    )


def test_seeding_before_any_refresh_leaves_the_rollups_alone(clock):
    demo.seed(days=2, messages=50, now=clock.now)
    assert not HourlyRollup.objects.exists() and rollup_state() == (None, [])


def test_a_purge_takes_the_deleted_messages_out_of_the_rollups(history, clock):
    # Reports delivered long ago: an open one would keep its message.
    ProviderCall.objects.update(state=CallState.SUCCEEDED)
    before = conversion_report(source="rollups").totals
    cutoff = history + timedelta(hours=20, minutes=10)
    purged = retention.purge(cutoff, batch_size=7)
    assert purged.messages > 40
    after = conversion_report(source="rollups").totals
    assert after.attempted == before.attempted - purged.messages
    assert counts(after) == counts(conversion_report(source="raw").totals)
    assert not HourlyRollup.objects.filter(
        hour__lt=floor_hour(history + timedelta(hours=20))
    ).exists()
    # The daily rows were added up again too.
    assert DailyRollup.objects.aggregate(n=Sum("attempted"))["n"] == after.attempted


def reads_table(model, queries) -> bool:
    return any(model._meta.db_table in query["sql"] for query in queries)


def local_days_check(filters, zone: str) -> list:
    """The series by local day from the rollups is the raw one, and each day's figures are
    those of a report over that day alone (percentiles included): from the quarter-hour totals
    (``filters``, no dimension) and from the UTC days plus or minus the rollup rows per
    dimension (with a dimension filter every message matches). Returns the rows."""
    with timezone.override(zone), CaptureQueriesContext(connection) as queries:
        rows = _local_days_check(filters)
    assert reads_totals(queries.captured_queries) and not reads_daily(queries.captured_queries)
    with timezone.override(zone), CaptureQueriesContext(connection) as queries:
        dimensioned = _local_days_check(replace(filters, **ALL_LOCMEM))
    assert reads_daily(queries.captured_queries) and not reads_totals(queries.captured_queries)
    assert [(r.key, r.totals) for r in dimensioned] == [(r.key, r.totals) for r in rows]
    return rows


def _local_days_check(filters) -> list:
    rolled = conversion_report(filters, "day", source="rollups")
    raw = conversion_report(filters, "day", source="raw")
    assert [(row.key, counts(row.totals)) for row in rolled.rows] == [
        (row.key, counts(row.totals)) for row in raw.rows
    ]
    for row in rolled.rows:
        start = timezone.make_aware(datetime.combine(row.key, datetime.min.time()))
        end = timezone.make_aware(
            datetime.combine(row.key + timedelta(days=1), datetime.min.time())
        )
        alone = conversion_report(
            replace(
                filters,
                sent_after=max(start, filters.sent_after),
                sent_before=min(end, filters.sent_before),
            )
        )
        assert row.totals == alone.totals
    assert rolled.totals == conversion_report(filters).totals
    return rolled.rows


@pytest.mark.parametrize(
    "zone", ["Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham", "America/New_York"]
)
def test_local_days_read_no_message_of_unchanged_hours(clock, zone):
    """UTC days plus or minus quarter-hour rows: in a :30 or :45 zone too, the messages read are
    only those of the partial quarter hours at the edges (none here: the range is aligned)."""
    start = datetime(2026, 11, 20, 7, 15, tzinfo=UTC)
    for index in range(4 * 24 * 4):  # every 15 minutes, plus 7, for four days
        sent = start + timedelta(minutes=15 * index + 7)
        message = make_message(sent_at=sent, to=NUMBERS[("US", "GB")[index % 2]])
        if index % 3:
            services.confirm(message, at=sent + timedelta(seconds=5 + 40 * (index % 50)))
    clock.advance(minutes=10)
    rollups.refresh(full=True)
    filters = ReportFilters(sent_after=start, sent_before=start + timedelta(days=4))
    for filtered in (filters, replace(filters, **ALL_LOCMEM)):
        with timezone.override(zone), CaptureQueriesContext(connection) as queries:
            conversion_report(filtered, "day", source="rollups")
        series = [q["sql"] for q in queries.captured_queries if "key_day" in q["sql"]]
        assert series and all("feedback_app_message" not in sql for sql in series)
    # The range starts and ends at :15: its partial hours come from the quarter-hour rows.
    assert reads_table(QuarterHourRollup, queries.captured_queries)
    rows = local_days_check(filters, zone)
    assert sum(row.totals.attempted for row in rows) == 4 * 24 * 4


@pytest.mark.parametrize(
    ("zone", "change"),
    [
        ("America/New_York", datetime(2026, 3, 8, 7, tzinfo=UTC)),  # 23-hour day
        ("America/New_York", datetime(2026, 11, 1, 6, tzinfo=UTC)),  # 25-hour day
        ("Pacific/Chatham", datetime(2026, 4, 4, 14, tzinfo=UTC)),  # +13:45 to +12:45
        ("America/Santiago", datetime(2026, 9, 6, 4, tzinfo=UTC)),  # no local midnight
    ],
)
def test_local_days_across_a_dst_change(clock, zone, change):
    start = change - timedelta(days=2, minutes=50)
    for index in range(4 * 24 * 2):  # every 30 minutes for four days, some confirmed late
        sent = start + timedelta(minutes=30 * index + 11)
        message = make_message(sent_at=sent, to=NUMBERS[("US", "DE")[index % 2]])
        if index % 4:
            services.confirm(message, at=sent + timedelta(seconds=3 + 97 * (index % 45)))
    clock.advance(minutes=10)
    rollups.refresh(full=True)
    filters = ReportFilters(sent_after=start, sent_before=start + timedelta(days=4))
    rows = local_days_check(filters, zone)
    with timezone.override(zone):
        midnights = [
            timezone.make_aware(datetime.combine(row.key + timedelta(days=n), datetime.min.time()))
            for row in rows
            for n in (0, 1)
        ]
    # In UTC: aware datetimes of one zone subtract as wall times.
    lengths = {
        b.astimezone(UTC) - a.astimezone(UTC)
        for a, b in zip(midnights[::2], midnights[1::2], strict=True)
    }
    assert lengths != {timedelta(days=1)}  # the range holds the change


def test_local_days_with_hours_changed_since_the_refresh(history, clock):
    """A day whose hours changed since the refresh is read from its hours and messages."""
    make_message(sent_at=history + timedelta(hours=30, minutes=20))
    make_message(sent_at=history + timedelta(hours=40, minutes=5))
    filters = ReportFilters(sent_after=history, sent_before=clock.now)
    for zone in ("Asia/Kolkata", "America/New_York", "Pacific/Chatham"):
        local_days_check(filters, zone)


@pytest.mark.postgres
def test_rollup_reads_run_without_parallel_workers_on_postgresql(history, clock):
    """Each part of a rollup read is small: starting parallel workers costs more than it saves,
    so each grouped statement runs with the setting off (in its transaction)."""
    filters = ReportFilters(sent_after=history + timedelta(minutes=40), sent_before=clock.now)
    with CaptureQueriesContext(connection) as queries:
        together = conversion_reports(filters, ["day", "country"])
    sql = [query["sql"] for query in queries.captured_queries]
    grouped = [index for index, text in enumerate(sql) if "GROUPING" in text]
    assert len(grouped) == 2
    for index in grouped:
        assert sql[index - 1] == "SET LOCAL max_parallel_workers_per_gather = 0"
    raw = conversion_report(filters, "country", source="raw")
    assert [(row.key, counts(row.totals)) for row in together.reports["country"].rows] == [
        (row.key, counts(row.totals)) for row in raw.rows
    ]
