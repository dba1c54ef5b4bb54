"""The conversion dashboard in the admin: known numbers, filters, permissions, CSV, alerts."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from feedback_app import rollups, services
from feedback_app.alerts import conversion_alerts
from feedback_app.reports import ReportFilters, conversion_report
from feedback_app.states import Delivery

from ..factories import NUMBERS, make_message

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
    """US: 10 sent, 8 delivered, 5 confirmed (10 s .. 50 s). GB: 4 sent, 1 confirmed at 300 s.

    Then the rollups are refreshed, so the dashboard reads them.
    """
    for index in range(10):
        message = make_message(
            sent_at=START + timedelta(hours=index),
            delivery_status=Delivery.DELIVERED if index < 8 else Delivery.FAILED,
        )
        if index < 5:
            services.confirm(message, at=message.sent_at + timedelta(seconds=10 * (index + 1)))
    for index in range(4):
        message = make_message(
            sent_at=START + timedelta(days=1, hours=index), to=NUMBERS["GB"], purpose="login"
        )
        if index == 0:
            services.confirm(message, at=message.sent_at + timedelta(seconds=300))
    clock.advance(minutes=10)
    rollups.refresh()


def tiles(response) -> dict[str, str]:
    return {str(tile.label): tile.value for tile in response.context["tiles"]}


def test_the_tiles_show_the_known_numbers(report_client, history):
    response = report_client.get(reverse(DASHBOARD), RANGE)
    assert response.status_code == 200
    shown = tiles(response)
    assert shown["Attempted"] == "14"
    assert shown["Delivered OK"] == "8"
    assert shown["Confirmed"] == "6"
    assert shown["Conversion rate"] == "42.9 %"  # 6 / 14
    assert shown["Delivery rate"] == "57.1 %"  # 8 / 14
    assert shown["Median time to confirm"] in ("35 s", "38 s", "40 s")  # exact: 35 s
    assert shown["Expired"] == "0"
    body = response.content.decode()
    assert 'role="img"' in body and "<title" in body  # charts carry a text alternative


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
        assert rows[-1][by] == "total" and rows[-1]["attempted"] == "14"
        assert sum(int(row["attempted"]) for row in rows[:-1]) == 14
    unknown = reverse("admin:feedback_app_conversiondashboard_csv", args=["colour"])
    assert report_client.get(unknown).status_code == 404


def test_the_dashboard_needs_the_report_permission(client, django_user_model, history):
    client.force_login(reader(django_user_model, "viewer", "view_message"))
    assert client.get(reverse(DASHBOARD)).status_code == 403
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse(DASHBOARD) not in index


def test_the_admin_index_links_to_the_dashboard(report_client):
    assert reverse(DASHBOARD) in report_client.get(reverse("admin:index")).content.decode()


def test_dashboard_api_and_command_agree_to_the_unit(report_client, django_user_model, history):
    page = report_client.get(reverse(DASHBOARD), RANGE).context
    api = APIClient()
    api.force_authenticate(reader(django_user_model, "api", "view_report", "view_message"))
    stats = api.get(
        "/feedback/api/stats/",
        {
            "sent_after": "2025-04-01T00:00:00Z",
            "sent_before": "2025-04-04T00:00:00Z",
            "by": "country",
        },
    ).json()
    out = io.StringIO()
    call_command(
        "feedback_report", "--since", "2025-04-01", "--until", "2025-04-04",
        "--by", "country", "--format", "json", stdout=out,
    )  # fmt: skip
    command = json.loads(out.getvalue())
    totals = page["totals"]
    for name in ("attempted", "delivered_ok", "confirmed", "confirmed_late", "expired"):
        assert getattr(totals, name) == stats["totals"][name] == command["totals"][name]
    for name in ("conversion_rate", "median_seconds_to_confirm", "p90_seconds_to_confirm"):
        assert getattr(totals, name) == stats["totals"][name] == command["totals"][name]
    by_country = {row["row"].key: row["row"].totals.confirmed for row in page["tables"][0]["rows"]}
    assert by_country == {row["key"]: row["totals"]["confirmed"] for row in stats["rows"]}
    assert by_country == {row["key"]: row["confirmed"] for row in command["rows"]}


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
    assert len(queries.captured_queries) <= 12


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
    assert page["totals"].attempted == raw.totals.attempted == 15
    assert page["totals"].confirmed == raw.totals.confirmed == 7
    by_country = {row["row"].key: row["row"].totals.confirmed for row in page["tables"][0]["rows"]}
    assert by_country == {row.key: row.totals.confirmed for row in raw.rows}
