"""The conversion dashboard in the admin: known numbers, filters, permissions, CSV, alerts."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from feedback_app import rollups, services
from feedback_app.admin.dashboard import CSV_FIELDS, RANGES
from feedback_app.alerts import conversion_alerts
from feedback_app.csv_cells import csv_cell
from feedback_app.reports import ReportFilters, conversion_report, floor_quarter_hour
from feedback_app.states import Delivery

from ..factories import NUMBERS, make_message
from ..statements import statements

pytestmark = pytest.mark.django_db

DASHBOARD = "admin:feedback_app_conversiondashboard_changelist"
START = datetime(2025, 4, 1, 9, tzinfo=UTC)
#: The custom range holding all of ``history``: 1 to 3 April 2025.
RANGE = {"range": "custom", "start": "2025-04-01", "end": "2025-04-03"}


def reader(django_user_model, username: str = "reader", *codenames: str):
    user = django_user_model.objects.create_user(username=username, password="pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="feedback_app", codename__in=codenames or ("view_report",)
        )
    )
    return user


@pytest.fixture
def report_client(client, django_user_model):
    client.force_login(reader(django_user_model))
    return client


@pytest.fixture
def history(clock):
    """Seventeen messages from 1 to 3 April 2025 with known answers, then a rollup refresh.

    - US, 1 April 09:00-18:00: 10 sent, 8 delivered, 2 failed; the first 5 confirmed after
      10, 20, 30, 40 and 50 s, the other 5 expire. Sender ACME for the even ones, none else.
    - GB (login, a 60 s window), 2 April: 4 sent (status sent), sender +14155550100; one
      confirmed after 300 s (late: past its window), 3 expire.
    - DE, 3 April 09:00 and 10:00: 2 delivered, sender "=1+2"; both expire, then the first is
      confirmed two hours after sending (late).
    - chat (no country, no sender), 3 April 12:00: delivered, confirmed after 15 s.

    Times to confirm: 10, 15, 20, 30, 40, 50, 300, 7200 s. In the rollups' buckets
    ([10, 20) 2, [20, 30) 1, [30, 60) 3, [300, 600) 1, >= 3600 1), interpolated inside one on
    a log scale: median 30 * 2 ** (1 / 3) = 37.8 s (exact 35 s), p90 300 * 2 ** 0.8 = 522 s
    (exact 2,370 s).
    """
    for index in range(10):
        message = make_message(
            sent_at=START + timedelta(hours=index),
            delivery_status=Delivery.DELIVERED if index < 8 else Delivery.FAILED,
            sender="ACME" if index % 2 == 0 else "",
        )
        if index < 5:
            services.confirm(message, at=message.sent_at + timedelta(seconds=10 * (index + 1)))
    for index in range(4):
        message = make_message(
            sent_at=START + timedelta(days=1, hours=index),
            to=NUMBERS["GB"],
            purpose="login",
            sender="+14155550100",
            delivery_status=Delivery.SENT,
        )
        if index == 0:
            services.confirm(message, at=message.sent_at + timedelta(seconds=300))
    germans = [
        make_message(
            sent_at=START + timedelta(days=2, hours=index),
            to=NUMBERS["DE"],
            sender="=1+2",
            delivery_status=Delivery.DELIVERED,
        )
        for index in range(2)
    ]
    chat = make_message(
        sent_at=START + timedelta(days=2, hours=3),
        channel="chat",
        to="member-7",
        delivery_status=Delivery.DELIVERED,
    )
    services.confirm(chat, at=chat.sent_at + timedelta(seconds=15))
    assert services.expire_overdue() == 10
    services.confirm(germans[0], at=germans[0].sent_at + timedelta(hours=2))
    clock.advance(minutes=10)
    rollups.refresh()


def tiles(response) -> dict[str, str]:
    return {str(tile.label): tile.value for tile in response.context["tiles"]}


#: Every field of the rows of ``history`` by country, from the rollups (percentiles from the
#: histogram): attempted, delivered OK, confirmed, late, failed, expired, pending, median, p90.
BY_COUNTRY = {
    # [30, 50] (the largest time bounds the bucket), ranks 2 and 3.6 of 5: shares 0.5 / 3, 2.1 / 3.
    "US": (10, 8, 5, 0, 0, 5, 0, 30 * (5 / 3) ** (0.5 / 3), 30 * (5 / 3) ** (2.1 / 3)),
    "GB": (4, 4, 1, 1, 0, 3, 0, 300.0, 300.0),
    "DE": (2, 2, 1, 1, 0, 1, 0, 3600 * 2**0.5, 3600 * 2**0.5),  # [3600, 7200]: its middle
    "": (1, 1, 1, 0, 0, 0, 0, 10 * 1.5**0.5, 10 * 1.5**0.5),  # [10, 15]: its middle
}


def fields_of(totals) -> tuple:
    return (
        totals.attempted,
        totals.delivered_ok,
        totals.confirmed,
        totals.confirmed_late,
        totals.failed,
        totals.expired,
        totals.pending,
        totals.median_seconds_to_confirm,
        totals.p90_seconds_to_confirm,
    )


def test_the_tiles_show_the_known_numbers(report_client, history):
    response = report_client.get(reverse(DASHBOARD), RANGE)
    assert response.status_code == 200
    assert tiles(response) == {
        "Attempted": "17",
        "Delivered OK": "15",
        "Confirmed": "8",
        "Conversion rate": "47.1 %",  # 8 / 17
        "Delivery rate": "88.2 %",  # 15 / 17
        "Median time to confirm": "38 s",
        "p90 time to confirm": "8.7 min",  # 522 s
        "Late conversions": "2",
        "Expired": "9",
        # No message of this history names a verification.
        "Conversion per verification": "–",
        "Resends per verification": "–",
        "Superseded": "0",
    }
    # The messages themselves give the exact percentiles the histogram approximates.
    exact = conversion_report(ReportFilters(), source="raw").totals
    assert (exact.median_seconds_to_confirm, exact.p90_seconds_to_confirm) == pytest.approx(
        (35.0, 2370.0)
    )


def test_the_tables_show_every_field_of_the_known_rows(report_client, history):
    tables = {
        table["by"]: table
        for table in report_client.get(reverse(DASHBOARD), RANGE).context["tables"]
    }
    country = [
        (item["row"].key, fields_of(item["row"].totals)) for item in tables["country"]["rows"]
    ]
    assert country == [(key, pytest.approx(values)) for key, values in BY_COUNTRY.items()]
    senders = {
        item["row"].key: fields_of(item["row"].totals)[:7] for item in tables["sender"]["rows"]
    }
    assert senders == {
        "": (6, 5, 3, 0, 0, 3, 0),  # US 1, 3, 5, 7, 9 and the chat message
        "ACME": (5, 4, 3, 0, 0, 2, 0),
        "+14155550100": (4, 4, 1, 1, 0, 3, 0),
        "=1+2": (2, 2, 1, 1, 0, 1, 0),
    }
    assert [item["row"].key for item in tables["channel"]["rows"]] == ["sms", "chat"]
    assert [item["row"].key for item in tables["purpose"]["rows"]] == ["otp", "login"]


def test_the_histogram_shows_the_known_counts(report_client, history):
    response = report_client.get(reverse(DASHBOARD), RANGE)
    counts = [bucket.count for bucket in response.context["histogram"]]
    assert counts == [0, 0, 2, 1, 3, 0, 0, 1, 0, 0, 1]
    chart = str(response.context["histogram_chart"])
    assert re.findall(r'data-count="(\d+)"', chart) == [str(count) for count in counts]
    assert "10s to 20s: 2 confirmed" in chart and "1h or more: 1 confirmed" in chart
    assert "under 5s: 0 confirmed" in chart
    # Under the bars, the bucket edges: one short label each, so they never run together.
    edges = re.findall(r'text-anchor="middle">([^<]+)</text>', chart)
    assert edges == ["0s", "5s", "10s", "20s", "30s", "1m", "2m", "5m", "10m", "30m", "1h"]


def test_the_time_series_has_a_table_and_a_csv(report_client, history):
    response = report_client.get(reverse(DASHBOARD), RANGE)
    rows = [
        (row["label"], row["totals"].attempted) for row in response.context["series_table"]["rows"]
    ]
    assert rows == [("01 Apr", 10), ("02 Apr", 4), ("03 Apr", 3)]
    body = response.content.decode()
    assert '<table id="fa-series-rows">' in body
    csv_url = response.context["series_table"]["csv"]
    assert csv_url.startswith(reverse("admin:feedback_app_conversiondashboard_csv", args=["day"]))
    lines = list(csv.reader(io.StringIO(report_client.get(csv_url).content.decode())))
    assert [(line[0], line[1]) for line in lines[1:]] == [
        ("2025-04-01", "10"),
        ("2025-04-02", "4"),
        ("2025-04-03", "3"),
        ("total", "17"),
    ]
    hourly = report_client.get(reverse(DASHBOARD), {**RANGE, "end": "2025-04-01"})
    assert hourly.context["series_table"]["csv"].split("?")[0].endswith("/csv/hour/")
    by_hour = report_client.get(hourly.context["series_table"]["csv"]).content.decode()
    first = list(csv.reader(io.StringIO(by_hour)))[1]
    assert first[:2] == ["2025-04-01T09:00:00+00:00", "1"]


def test_no_link_sits_inside_a_chart_drawn_as_an_image(report_client, history):
    body = report_client.get(reverse(DASHBOARD), RANGE).content.decode()
    charts = re.findall(r'<svg class="fa-chart"[^>]*>.*?</svg>', body, re.S)
    assert len(charts) == 3
    for chart in charts:
        role = re.search(r'role="(\w+)"', chart)[1]
        assert ("<a " in chart) == (role == "group"), chart[:120]
    assert 'id="fa-countries"' in next(chart for chart in charts if 'role="group"' in chart)


def test_clicking_a_country_filters_the_page(report_client, history):
    page = report_client.get(reverse(DASHBOARD), RANGE)
    link = next(row["query"] for row in page.context["tables"][0]["rows"] if row["row"].key == "GB")
    assert f'href="?{link}"'.replace("&", "&amp;") in page.content.decode()
    filtered = report_client.get(f"{reverse(DASHBOARD)}?{link}")
    assert tiles(filtered)["Attempted"] == "4"
    assert tiles(filtered)["Confirmed"] == "1"
    assert [row["row"].key for row in filtered.context["tables"][0]["rows"]] == ["GB"]


def test_short_ranges_are_charted_per_hour(report_client, history):
    response = report_client.get(reverse(DASHBOARD), {"range": "custom", "start": "2025-04-01"})
    assert "days" in str(response.context["series_chart"])
    hourly = report_client.get(reverse(DASHBOARD), {**RANGE, "end": "2025-04-01"})
    assert "24 hours" in str(hourly.context["series_chart"])


def test_each_breakdown_downloads_as_csv(report_client, history):
    for by in ("country", "provider", "purpose", "sender", "channel"):
        url = reverse("admin:feedback_app_conversiondashboard_csv", args=[by])
        response = report_client.get(url, RANGE)
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(response.content.decode())))
        assert rows[-1][by] == "total" and rows[-1]["attempted"] == "17"
        assert sum(int(row["attempted"]) for row in rows[:-1]) == 17
    unknown = reverse("admin:feedback_app_conversiondashboard_csv", args=["colour"])
    assert report_client.get(unknown).status_code == 404


def test_the_dashboard_needs_the_report_permission(client, django_user_model, history):
    client.force_login(reader(django_user_model, "viewer", "view_message"))
    assert client.get(reverse(DASHBOARD)).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse(DASHBOARD) not in index


def test_the_admin_index_links_to_the_dashboard(report_client):
    assert reverse(DASHBOARD) in report_client.get(reverse("admin:index")).content.decode()


def recent_history(clock) -> None:
    """Four days of messages up to now at odd minutes, every outcome; a refresh, then changes.

    Countries US, GB, IN and chat (no country); senders none, ACME, +14155550100; delivered,
    sent, failed, undelivered; confirmed in time, confirmed late (past the window, or after
    expiring), failed, expired. After the refresh one more message and one late confirmation,
    so the hours changed since are read from the messages.
    """
    now = clock.now
    expired_later = []
    for index in range(170):
        sent = now - timedelta(minutes=7 + 33 * index, seconds=index)
        fields = {
            "sent_at": sent,
            "sender": ("", "ACME", "+14155550100")[index % 3],
            "provider": ("locmem", "silent")[index % 2],
            "purpose": "login" if index % 5 == 0 else "otp",
            "delivery_status": (
                Delivery.DELIVERED, Delivery.SENT, Delivery.FAILED, Delivery.UNDELIVERED
            )[index % 4],
        }  # fmt: skip
        country = ("US", "GB", "IN", None)[index % 7 % 4]
        if country is None:
            fields.update(channel="chat", to=f"member-{index}")
        else:
            fields["to"] = NUMBERS[country]
        message = make_message(**fields)
        outcome = index % 6
        if outcome in (0, 1, 2):
            # 3 s to about 22 min: some within their window, some late.
            waited = timedelta(seconds=3 + (index * 97) % 1300)
            services.confirm(message, at=min(sent + waited, now))
        elif outcome == 3:
            services.fail(message, at=sent + timedelta(seconds=20))
        elif index % 12 == 4:
            expired_later.append(message)
    # Verifications with 0 to 2 resends, most converted through their last message (so the
    # others are superseded), spread over the same four days.
    for index in range(24):
        sent = now - timedelta(minutes=11 + 241 * index)
        same = {"to": NUMBERS[("US", "GB", "IN")[index % 3]], "verification": f"attempt-{index}"}
        first = make_message(sent_at=sent, sender=("", "ACME")[index % 2], **same)
        resends = [
            make_message(sent_at=sent + timedelta(minutes=1 + number), **same)
            for number in range(index % 3)
        ]
        if index % 4 != 3:
            services.confirm((resends or [first])[-1], at=sent + timedelta(minutes=4))
    services.expire_overdue()
    for message in expired_later[:5]:
        services.confirm(message, at=now)  # late, after expiring
    clock.advance(minutes=10)
    rollups.refresh()
    clock.advance(minutes=10)
    services.confirm(expired_later[5], at=clock.now)
    make_message(sent_at=clock.now - timedelta(minutes=1), to=NUMBERS["GB"])


def as_plain(totals) -> dict:
    return {name: getattr(totals, name) for name in CSV_FIELDS}


@pytest.mark.parametrize("zone", ["Asia/Kolkata", "America/New_York", "UTC"])
@pytest.mark.parametrize("preset", ["7d", "24h"])
def test_dashboard_api_and_command_agree_on_every_field(
    report_client, django_user_model, clock, settings, zone, preset
):
    settings.TIME_ZONE = zone
    # Four days of history across New York's switch to summer time (8 March 2026).
    clock.now = datetime(2026, 3, 10, 2, 17, 41, 250000, tzinfo=UTC)
    recent_history(clock)
    page = report_client.get(reverse(DASHBOARD), {"range": preset}).context
    filters = page["filters"]
    # The presets end now and start at the quarter hour before now less their length (here
    # not a midnight or an hour).
    assert filters.sent_after == floor_quarter_hour(clock.now - RANGES[preset][1])
    assert filters.sent_after.minute == 30 and filters.sent_before is None
    api = APIClient()
    api.force_authenticate(reader(django_user_model, "api", "view_report", "view_message"))
    since = filters.sent_after.isoformat()

    def stats(by: str) -> dict:
        response = api.get("/feedback/api/stats/", {"sent_after": since, "by": by})
        assert response.status_code == 200, response.content
        body = response.json()
        rows = {str(row["key"]): row["totals"] for row in body["rows"]}
        return {"totals": body["totals"], "rows": rows}

    def command(by: str) -> dict:
        out = io.StringIO()
        call_command(
            "feedback_report", "--since", since, "--by", by, "--format", "json", stdout=out
        )
        body = json.loads(out.getvalue())
        rows = {str(row.pop("key")): row for row in body["rows"]}
        return {"totals": body["totals"], "rows": rows}

    def csv_rows(by: str) -> dict:
        url = reverse("admin:feedback_app_conversiondashboard_csv", args=[by])
        lines = list(
            csv.DictReader(io.StringIO(report_client.get(url, {"range": preset}).content.decode()))
        )
        return {line.pop(by): line for line in lines}

    totals = as_plain(page["totals"])
    assert totals["attempted"] > 30 and totals["confirmed_late"] > 0 and totals["expired"] > 0
    assert totals["verifications"] > 5 and totals["superseded"] > 0 and totals["resends"] > 0
    tables = {table["by"]: table for table in page["tables"]}
    # The time series: days, or hours (which only the page and its CSV give).
    series = {
        str(row["key"].isoformat()): as_plain(row["totals"])
        for row in page["series_table"]["rows"]
        if row["totals"].attempted
    }
    series_by = "day" if preset == "7d" else "hour"
    groups = {
        by: {item["row"].key: as_plain(item["row"].totals) for item in table["rows"]}
        for by, table in tables.items()
    }
    groups[series_by] = series
    for by, rows in groups.items():
        assert len(rows) >= 2, by
        sheet = csv_rows(by)
        assert sheet.pop("total") == {
            name: str(value) if value is not None else "" for name, value in totals.items()
        }
        assert sheet == {
            (str(key) if by != "hour" else key): {
                name: str(value) if value is not None else "" for name, value in row.items()
            }
            for key, row in rows.items()
        }, by
        if by == "hour":
            continue
        for other in (stats(by), command(by)):
            assert other["totals"] == totals, by
            assert other["rows"] == {str(key): row for key, row in rows.items()}, by
    # Counts also agree with the messages alone (percentiles there are exact, not histogram).
    raw = conversion_report(filters, "country", source="raw")
    counts = ("attempted", "delivered_ok", "confirmed", "confirmed_late", "failed", "expired")
    assert {name: totals[name] for name in counts} == {
        name: getattr(raw.totals, name) for name in counts
    }


def test_an_alert_names_a_country_whose_conversion_dropped(clock, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "ALERTS": {"MIN_VOLUME": 10, "DROP": 0.3}}
    now = clock.now
    for index in range(20):  # baseline: 15 of 20 converted (75 %)
        message = make_message(sent_at=now - timedelta(days=3, minutes=index), to=NUMBERS["DE"])
        if index < 15:
            services.confirm(message, at=message.sent_at + timedelta(seconds=20))
    for index in range(12):  # last 24 hours: 2 of 12 (17 %)
        message = make_message(sent_at=now - timedelta(hours=2, minutes=index), to=NUMBERS["DE"])
        if index < 2:
            services.confirm(message, at=message.sent_at + timedelta(seconds=20))
    for index in range(12):  # steady: no alert
        message = make_message(sent_at=now - timedelta(days=2, minutes=index), to=NUMBERS["BR"])
        make_message(sent_at=now - timedelta(hours=3, minutes=index), to=NUMBERS["BR"])
    (alert,) = [a for a in conversion_alerts(now=now) if a.dimension == "country"]
    assert (alert.key, alert.recent_attempted, alert.recent_confirmed) == ("DE", 12, 2)
    assert alert.baseline_rate == pytest.approx(0.75)
    assert alert.drop == pytest.approx(1 - (2 / 12) / 0.75)
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "ALERTS": {"MIN_VOLUME": 13, "DROP": 0.3}}
    assert [a for a in conversion_alerts(now=now) if a.dimension == "country"] == []


def test_the_page_reads_the_rollups_once_for_its_numbers_and_twice_for_alerts(
    report_client, history
):
    with CaptureQueriesContext(connection) as queries:
        response = report_client.get(reverse(DASHBOARD), RANGE)
    assert response.status_code == 200
    rollup_reads = [
        query["sql"]
        for query in queries.captured_queries
        if "_hourlyrollup" in query["sql"] or "_dailyrollup" in query["sql"]
    ]
    assert len(rollup_reads) == 3
    # Session, user, permissions and the rollup state besides: a handful, not one per table.
    assert len(statements(queries.captured_queries)) <= 12


def test_the_daily_path_agrees_with_the_messages_on_the_page(report_client, history, clock):
    # A change after the refresh in a day otherwise read whole from the daily rollups.
    message = make_message(sent_at=START + timedelta(days=1, hours=5), to=NUMBERS["GB"])
    services.confirm(message, at=message.sent_at + timedelta(seconds=30))
    page = report_client.get(reverse(DASHBOARD), RANGE).context
    raw = conversion_report(
        ReportFilters(
            sent_after=datetime(2025, 4, 1, tzinfo=UTC),
            sent_before=datetime(2025, 4, 4, tzinfo=UTC),
        ),
        "country",
        source="raw",
    )
    assert page["totals"].attempted == raw.totals.attempted == 18
    assert page["totals"].confirmed == raw.totals.confirmed == 9
    by_country = {row["row"].key: row["row"].totals.confirmed for row in page["tables"][0]["rows"]}
    assert by_country == {row.key: row.totals.confirmed for row in raw.rows}


#: What the filter form sends when "Apply" is pressed with nothing typed in.
BLANK_FORM = {"provider": "", "purpose": "", "channel": "", "country": "", "sender": ""}


def test_applying_the_form_with_empty_fields_filters_nothing(report_client, history):
    applied = report_client.get(reverse(DASHBOARD), {**RANGE, **BLANK_FORM})
    assert applied.context["form"].errors == {}
    assert tiles(applied)["Attempted"] == "17"
    assert (
        applied.context["filters"]
        == report_client.get(reverse(DASHBOARD), RANGE).context["filters"]
    )
    assert applied.context["active"] == []
    url = reverse("admin:feedback_app_conversiondashboard_csv", args=["country"])
    sheet = report_client.get(url, {**RANGE, **BLANK_FORM}).content.decode()
    assert sheet.splitlines()[-1].startswith("total,17,")


def test_none_selects_the_messages_without_a_country_or_a_sender(report_client, history):
    page = report_client.get(reverse(DASHBOARD), RANGE)
    (blank,) = [row for row in page.context["tables"][0]["rows"] if row["row"].key == ""]
    assert blank["label"] == "(none)" and "country=__none__" in blank["query"]
    chart = str(page.context["country_chart"])
    assert 'data-country="__none__"' in chart and ">(none)</text>" in chart
    assert "??" not in chart

    chat = report_client.get(f"{reverse(DASHBOARD)}?{blank['query']}")
    assert chat.context["filters"].country == ""
    assert tiles(chat)["Attempted"] == "1" and tiles(chat)["Confirmed"] == "1"
    assert [(chip["name"], chip["label"]) for chip in chat.context["active"]] == [
        ("country", "(none)")
    ]
    # The form keeps the value, so "Apply" keeps the filter.
    assert 'name="country" value="__none__"' in chat.content.decode()

    no_sender = report_client.get(reverse(DASHBOARD), {**RANGE, **BLANK_FORM, "sender": "__none__"})
    assert tiles(no_sender)["Attempted"] == "6"
    url = reverse("admin:feedback_app_conversiondashboard_csv", args=["sender"])
    sheet = list(
        csv.reader(
            io.StringIO(report_client.get(url, {**RANGE, "sender": "__none__"}).content.decode())
        )
    )
    assert [line[:2] for line in sheet[1:]] == [["", "6"], ["total", "6"]]


def test_a_country_longer_than_a_code_is_a_form_error(report_client, history):
    response = report_client.get(reverse(DASHBOARD), {**RANGE, "country": "USA"})
    assert "country" in response.context["form"].errors
    assert response.context["filters"].country is None  # the default view, with the error shown


def test_the_range_select_shows_the_range_the_page_shows(report_client, history, clock):
    for query in ({}, {"country": "US"}, BLANK_FORM):
        response = report_client.get(reverse(DASHBOARD), query)
        body = response.content.decode()
        assert '<option value="30d" selected>' in body, query
        filters = response.context["filters"]
        # 30 days back, from the quarter hour there (read from the rollups alone).
        assert filters.sent_after == floor_quarter_hour(clock.now - timedelta(days=30))
        assert clock.now - timedelta(days=30) - filters.sent_after < timedelta(minutes=15)
        assert response.context["period"].startswith("Messages sent from")
        assert response.context["period"].endswith("to now (UTC)")
    week = report_client.get(reverse(DASHBOARD), {**BLANK_FORM, "range": "7d"})
    assert '<option value="7d" selected>' in week.content.decode()
    assert week.context["filters"].sent_after == floor_quarter_hour(clock.now - timedelta(days=7))
    custom = report_client.get(reverse(DASHBOARD), RANGE).context["period"]
    assert custom == "Messages sent from April 1, 2025, midnight to April 4, 2025, midnight (UTC)"


def test_dates_alone_are_a_custom_range_and_a_preset_ignores_and_clears_them(
    report_client, history
):
    dates = {"start": "2025-04-01", "end": "2025-04-03"}
    alone = report_client.get(reverse(DASHBOARD), dates)
    assert (
        alone.context["filters"] == report_client.get(reverse(DASHBOARD), RANGE).context["filters"]
    )
    assert '<option value="custom" selected>' in alone.content.decode()
    preset = report_client.get(reverse(DASHBOARD), {**dates, "range": "7d"})
    assert preset.context["form"]["start"].value() in ("", None)
    assert preset.context["filters"].sent_before is None


def test_a_custom_end_alone_is_the_30_days_before_it(report_client, history):
    response = report_client.get(reverse(DASHBOARD), {"range": "custom", "end": "2025-04-03"})
    filters = response.context["filters"]
    assert filters.sent_before == datetime(2025, 4, 4, tzinfo=UTC)
    assert filters.sent_before - filters.sent_after == timedelta(days=30)
    assert response.context["totals"].attempted == 17


def test_a_custom_start_in_the_future_is_a_form_error(report_client, history, clock):
    future = (clock.now + timedelta(days=3)).date().isoformat()
    response = report_client.get(reverse(DASHBOARD), {"range": "custom", "start": future})
    assert "start" in response.context["form"].errors


def test_csv_cells_that_would_run_as_formulas_are_escaped(report_client, history):
    url = reverse("admin:feedback_app_conversiondashboard_csv", args=["sender"])
    keys = [
        line[0] for line in csv.reader(io.StringIO(report_client.get(url, RANGE).content.decode()))
    ]
    # A formula gets a leading quote; a phone number is a plain number, kept as it is.
    assert keys == ["sender", "", "ACME", "+14155550100", "'=1+2", "total"]


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("+14155550100", "+14155550100"),
        ("-12.5", "-12.5"),
        ("ACME", "ACME"),
        (17, 17),
    ],
)
def test_csv_cell(value, written):
    assert csv_cell(value) == written


def test_alerts_show_on_the_page_with_their_numbers(report_client, clock, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "ALERTS": {"MIN_VOLUME": 10, "DROP": 0.3}}
    now = clock.now
    for index in range(20):  # baseline: 15 of 20 converted (75 %)
        message = make_message(
            sent_at=now - timedelta(days=3, minutes=index), to=NUMBERS["DE"], sender="ACME"
        )
        if index < 15:
            services.confirm(message, at=message.sent_at + timedelta(seconds=20))
    for index in range(12):  # last 24 hours: 2 of 12 (17 %)
        message = make_message(
            sent_at=now - timedelta(hours=2, minutes=index), to=NUMBERS["DE"], sender="ACME"
        )
        if index < 2:
            services.confirm(message, at=message.sent_at + timedelta(seconds=20))
    for index in range(12):  # no sender, steady: no alert
        make_message(sent_at=now - timedelta(days=2, minutes=index), to=NUMBERS["BR"])
        make_message(sent_at=now - timedelta(hours=3, minutes=index), to=NUMBERS["BR"])
    clock.advance(minutes=10)
    rollups.refresh()
    body = report_client.get(reverse(DASHBOARD)).content.decode()
    shown = re.findall(
        r'<li class="warning" data-dimension="(\w+)" data-key="([^"]*)">(.*?)</li>', body, re.S
    )
    assert [(dimension, key) for dimension, key, _text in shown] == [
        ("country", "DE"),
        ("sender", "ACME"),
    ]
    for _dimension, _key, text in shown:
        assert " ".join(text.split()).endswith(
            "conversion 16.7 % (2 of 12) against 75.0 % over the 30 days before (20 messages)"
        )
    # Filtered to another country, the alerts follow the filters.
    body = report_client.get(reverse(DASHBOARD), {"country": "BR"}).content.decode()
    assert 'class="fa-alerts"' not in body


def test_the_tables_write_numbers_as_the_tiles_do(report_client, history):
    body = report_client.get(reverse(DASHBOARD), RANGE).content.decode()
    us = re.search(r'<tr>\s*<th scope="row" data-value="US">.*?</tr>', body, re.S)[0]
    cells = re.findall(r'<td data-value="([^"]*)">([^<]*)</td>', us)
    # Attempted, delivered OK, confirmed, conversion, delivery, median, p90, late, expired;
    # conversion per verification.
    assert [text for _value, text in cells] == [
        "10",
        "8",
        "5",
        "50.0 %",
        "80.0 %",
        "33 s",  # BY_COUNTRY: 32.7 s
        "43 s",  # 42.9 s
        "0",
        "5",
        "–",
    ]
    assert cells[3][0] == "0.5"  # the tables sort by the number, not its text
    assert 'title="status delivered, sent or unknown"' in body
    assert "conversion 0." not in body and "floatformat" not in body


def test_the_provider_filter_offers_the_configured_providers_and_those_in_the_data(
    report_client, history, settings
):
    make_message(provider="silent", sent_at=START + timedelta(hours=1))
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], "twilio": {}},
    }
    page = report_client.get(reverse(DASHBOARD), RANGE)
    choices = page.context["form"].fields["provider"].choices
    assert choices == [
        ("", "Any"),
        ("locmem", "locmem"),
        ("silent", "silent"),
        ("twilio", "twilio"),
    ]
    assert '<select name="provider" id="id_provider">' in page.content.decode()

    # A provider no longer configured still names its old messages.
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PROVIDERS": {}}
    old = report_client.get(reverse(DASHBOARD), {**RANGE, "provider": "silent"})
    assert old.context["form"].errors == {}
    assert tiles(old)["Attempted"] == "1"
    assert ("silent", "silent") in old.context["form"].fields["provider"].choices
    too_long = report_client.get(reverse(DASHBOARD), {**RANGE, "provider": "x" * 33})
    assert "provider" in too_long.context["form"].errors
    assert too_long.context["filters"].provider is None


def test_long_arns_are_shortened_with_the_full_value_in_a_title(report_client, history):
    arn = (
        "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
        "/bot/verify-bot"
    )
    make_message(channel="chat", to="member-7", sender=arn, sent_at=START + timedelta(hours=2))
    page = report_client.get(reverse(DASHBOARD), RANGE)
    body = page.content.decode()
    assert f'title="{arn}">…/bot/verify-bot</a>' in body
    assert f'<th scope="row" data-value="{arn}">' in body  # sorting uses the full value
    filtered = report_client.get(reverse(DASHBOARD), {**RANGE, "sender": arn})
    assert tiles(filtered)["Attempted"] == "1"
    assert "sender: …/bot/verify-bot ×" in filtered.content.decode()
