"""The conversion report: counts, rates, percentiles and breakdowns, computed in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message
from feedback_app.reports import (
    BREAKDOWNS,
    ReportFilters,
    conversion_report,
    percentiles_by_rank,
)
from feedback_app.states import Delivery

from .factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db


def confirmed_after(seconds: float, **fields) -> Message:
    sent = fields.pop("sent_at", timezone.now() - timedelta(hours=1))
    message = make_message(sent_at=sent, **fields)
    services.confirm(message, at=sent + timedelta(seconds=seconds))
    return message


def test_empty_report_has_zero_counts_and_no_rates():
    report = conversion_report()
    assert report.totals.attempted == 0
    assert report.totals.conversion_rate is None and report.totals.delivery_rate is None
    assert report.totals.median_seconds_to_confirm is None
    assert report.rows == []


def test_totals_count_each_outcome():
    now = timezone.now()
    recent = now - timedelta(minutes=1)
    confirmed = make_message(delivery_status=Delivery.DELIVERED, sent_at=recent)
    services.confirm(confirmed)
    make_message(delivery_status=Delivery.SENT, sent_at=recent)  # pending
    make_message(delivery_status=Delivery.UNKNOWN, sent_at=recent)  # pending
    failed = make_message(delivery_status=Delivery.UNDELIVERED, sent_at=recent)
    services.fail(failed)
    expired = make_message(sent_at=now - timedelta(hours=1))  # window 10 minutes
    services.expire_overdue()
    services.confirm(expired)  # a late conversion
    make_message(delivery_status=Delivery.FAILED, sent_at=now - timedelta(hours=2))
    services.expire_overdue()

    totals = conversion_report().totals
    assert totals.attempted == 6
    assert totals.delivered_ok == 3  # delivered, sent, unknown
    assert totals.confirmed == 2
    assert totals.confirmed_late == 1
    assert totals.failed == 1
    assert totals.expired == 1
    assert totals.pending == 2
    assert totals.conversion_rate == pytest.approx(2 / 6)
    assert totals.delivery_rate == pytest.approx(3 / 6)


def test_percentiles_of_time_to_confirm_interpolate_like_percentile_cont():
    for seconds in (10, 20, 30, 40, 50, 60, 70):
        confirmed_after(seconds)
    make_message()  # not confirmed: not part of the times
    totals = conversion_report().totals
    assert totals.median_seconds_to_confirm == pytest.approx(40)
    # position (7 - 1) * 0.9 = 5.4: between 60 and 70
    assert totals.p90_seconds_to_confirm == pytest.approx(64)


@pytest.mark.parametrize(
    ("times", "median", "p90"),
    [
        ([5], 5, 5),
        ([5, 15], 10, 14),
        ([1, 2, 3, 4], 2.5, 3.7),
        ([0.5, 0.5, 0.5], 0.5, 0.5),
    ],
)
def test_percentiles_for_small_groups(times, median, p90):
    for seconds in times:
        confirmed_after(seconds)
    totals = conversion_report().totals
    assert totals.median_seconds_to_confirm == pytest.approx(median)
    assert totals.p90_seconds_to_confirm == pytest.approx(p90)


def test_rank_percentiles_match_the_database_aggregate_per_group():
    for index, seconds in enumerate([3, 9, 27, 81, 243, 1, 2, 4, 8, 16, 32]):
        confirmed_after(seconds, to=NUMBERS["US" if index < 5 else "GB"])
    report = conversion_report(by="country")
    ranked = percentiles_by_rank(Message.objects.order_by(), F("country"))
    for row in report.rows:
        assert row.totals.median_seconds_to_confirm == pytest.approx(
            ranked[row.key]["median_seconds_to_confirm"]
        )
        assert row.totals.p90_seconds_to_confirm == pytest.approx(
            ranked[row.key]["p90_seconds_to_confirm"]
        )
    by_key = {row.key: row.totals for row in report.rows}
    assert by_key["US"].median_seconds_to_confirm == pytest.approx(27)
    assert by_key["GB"].median_seconds_to_confirm == pytest.approx(6)


@pytest.mark.postgres
def test_on_postgresql_percentile_cont_and_the_rank_query_agree():
    for seconds in (1.5, 2.25, 7, 11, 13.75, 100, 250):
        confirmed_after(seconds, purpose="login")
    confirmed_after(3, purpose="signup")
    report = conversion_report(by="purpose")
    ranked = percentiles_by_rank(Message.objects.order_by(), F("purpose"))
    for row in report.rows:
        for name in ("median_seconds_to_confirm", "p90_seconds_to_confirm"):
            assert getattr(row.totals, name) == pytest.approx(ranked[row.key][name])


@pytest.mark.parametrize("by", BREAKDOWNS)
def test_each_breakdown_adds_up_to_the_totals(by):
    start = datetime(2025, 3, 1, 12, tzinfo=UTC)
    for day in range(3):
        for index, country in enumerate(("US", "GB")):
            message = make_message(
                sent_at=start + timedelta(days=day),
                to=NUMBERS[country],
                provider=("locmem", "silent")[index],
                purpose=("otp", "login")[day % 2],
                sender=("A", "B")[index],
                channel=("sms", "whatsapp")[day % 2],
            )
            if day:
                services.confirm(message, at=message.sent_at + timedelta(seconds=day))
    report = conversion_report(by=by)
    assert sum(row.totals.attempted for row in report.rows) == report.totals.attempted == 6
    assert sum(row.totals.confirmed for row in report.rows) == report.totals.confirmed == 4
    assert len({row.key for row in report.rows}) == len(report.rows) > 1


def test_by_day_is_in_order_and_keyed_by_date():
    start = datetime(2025, 3, 1, 23, 30, tzinfo=UTC)
    make_message(sent_at=start + timedelta(days=1))
    make_message(sent_at=start)
    make_message(sent_at=start + timedelta(hours=1))  # the next day
    rows = conversion_report(by="day").rows
    assert [(row.key.isoformat(), row.totals.attempted) for row in rows] == [
        ("2025-03-01", 1),
        ("2025-03-02", 2),
    ]


def test_other_breakdowns_come_largest_first():
    for _ in range(3):
        make_message(to=NUMBERS["DE"])
    make_message(to=NUMBERS["BR"])
    for _ in range(2):
        make_message(to=NUMBERS["IN"])
    rows = conversion_report(by="country").rows
    assert [(row.key, row.totals.attempted) for row in rows] == [("DE", 3), ("IN", 2), ("BR", 1)]


def test_filters_narrow_the_report():
    start = timezone.now() - timedelta(hours=5)
    make_message(provider="silent", sent_at=start)
    wanted = make_message(provider="locmem", purpose="login", sent_at=start + timedelta(hours=1))
    services.confirm(wanted)
    make_message(provider="locmem", purpose="login", sent_at=start + timedelta(hours=3))
    filters = ReportFilters(
        provider="locmem",
        purpose="login",
        sent_after=start + timedelta(minutes=30),
        sent_before=start + timedelta(hours=2),
    )
    totals = conversion_report(filters).totals
    assert (totals.attempted, totals.confirmed) == (1, 1)
    assert conversion_report(ReportFilters(feedback="confirmed")).totals.attempted == 1


def test_filters_from_a_mapping_ignore_empty_values_and_unknown_keys():
    filters = ReportFilters.from_mapping({"provider": "locmem", "country": "", "colour": "x"})
    assert filters == ReportFilters(provider="locmem")


def test_an_unknown_breakdown_is_a_value_error():
    with pytest.raises(ValueError, match="unknown breakdown"):
        conversion_report(by="colour")


@pytest.mark.parametrize("by", [None, "day", "country"])
def test_the_number_of_queries_does_not_grow_with_the_rows(by):
    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            conversion_report(by=by)
        return len(queries)

    confirmed_after(5)
    few = count_queries()
    for index in range(40):
        confirmed_after(index, to=NUMBERS[("US", "GB", "DE", "BR")[index % 4]])
    # At most 4 for the report, plus 1 for the rollup state (rollups.py).
    assert count_queries() == few <= 5
