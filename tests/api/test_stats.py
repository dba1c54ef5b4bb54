"""``GET api/stats/``: the conversion report over HTTP, with the list's filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from feedback_app import services
from feedback_app.states import Delivery

from ..factories import NUMBERS, make_message
from .conftest import API

pytestmark = pytest.mark.django_db

STATS = f"{API}/stats/"
TOTAL_FIELDS = {
    "attempted",
    "delivered_ok",
    "confirmed",
    "confirmed_late",
    "failed",
    "expired",
    "pending",
    "conversion_rate",
    "delivery_rate",
    "median_seconds_to_confirm",
    "p90_seconds_to_confirm",
    "superseded",
    "verifications",
    "verifications_converted",
    "verification_conversion_rate",
    "resends",
    "verifications_resent",
    "mean_resends",
    "resent_share",
}


@pytest.fixture
def reader(client_with):
    return client_with("view_report", "view_message")


@pytest.fixture
def history(db):
    start = datetime(2025, 4, 1, 9, tzinfo=UTC)
    messages = []
    for day in range(3):
        for country in ("US", "GB"):
            message = make_message(
                sent_at=start + timedelta(days=day),
                to=NUMBERS[country],
                delivery_status=Delivery.DELIVERED,
                purpose="login" if country == "GB" else "otp",
            )
            messages.append(message)
    for message in messages[:4]:
        services.confirm(message, at=message.sent_at + timedelta(seconds=30))
    return messages


def test_stats_totals(reader, history):
    body = reader.get(STATS).json()
    assert body["by"] is None and body["rows"] == []
    totals = body["totals"]
    assert set(totals) == TOTAL_FIELDS
    assert (totals["attempted"], totals["confirmed"], totals["delivered_ok"]) == (6, 4, 6)
    assert totals["conversion_rate"] == pytest.approx(4 / 6)
    assert totals["median_seconds_to_confirm"] == pytest.approx(30)


def test_stats_by_day(reader, history):
    body = reader.get(STATS, {"by": "day"}).json()
    assert body["by"] == "day"
    assert [
        (row["key"], row["totals"]["attempted"], row["totals"]["confirmed"]) for row in body["rows"]
    ] == [
        ("2025-04-01", 2, 2),
        ("2025-04-02", 2, 2),
        ("2025-04-03", 2, 0),
    ]


@pytest.mark.parametrize("by", ["country", "provider", "purpose", "sender", "channel"])
def test_stats_by_each_breakdown_adds_up(reader, history, by):
    body = reader.get(STATS, {"by": by}).json()
    assert sum(row["totals"]["attempted"] for row in body["rows"]) == 6
    assert all(set(row["totals"]) == TOTAL_FIELDS for row in body["rows"])


@pytest.mark.parametrize(
    "query",
    [
        {"country": "GB"},
        {"purpose": "login"},
        {"feedback": "confirmed"},
        {"feedback": "pending"},
        {"provider": "locmem"},
        {"channel": "sms"},
        {"delivery_status": "delivered"},
        {"sender": ""},
        {"sent_after": "2025-04-02T00:00:00Z"},
        {"sent_before": "2025-04-02T09:00:00Z"},
        {"sent_after": "2025-04-01T10:00:00+01:00", "country": "US"},
    ],
)
def test_stats_use_the_same_filters_as_the_list(reader, history, query):
    listed = reader.get(f"{API}/messages/", {**query, "page_size": 500}).json()["results"]
    totals = reader.get(STATS, query).json()["totals"]
    assert totals["attempted"] == len(listed)
    assert totals["confirmed"] == sum(row["feedback"] == "confirmed" for row in listed)


def test_a_country_code_in_any_case_is_the_same_country(reader, history):
    upper = reader.get(STATS, {"country": "US"}).json()["totals"]
    assert upper["attempted"] > 0
    assert reader.get(STATS, {"country": "us"}).json()["totals"] == upper
    listed = reader.get(f"{API}/messages/", {"country": "us", "page_size": 500}).json()
    assert len(listed["results"]) == upper["attempted"]


def test_stats_need_the_report_permission(client_with, history):
    response = client_with("view_message").get(STATS)
    assert response.status_code == 403
    assert "attempted" not in response.content.decode()


def test_stats_report_permission_alone_is_enough(client_with, history):
    assert client_with("view_report").get(STATS).status_code == 200


def test_anonymous_stats_are_401(anonymous, history):
    assert anonymous.get(STATS).status_code == 401


def test_unknown_breakdown_is_400(reader):
    response = reader.get(STATS, {"by": "colour"})
    assert response.status_code == 400
    assert response.json()["fields"]["by"][0]["code"] == "invalid_choice"


def test_stats_of_nothing(reader):
    body = reader.get(STATS, {"sent_after": timezone.now().isoformat()}).json()
    assert body["totals"]["attempted"] == 0
    assert body["totals"]["conversion_rate"] is None


def test_stats_count_verifications_and_resends(reader):
    sent = timezone.now() - timedelta(hours=2)
    first = make_message(sent_at=sent, verification="attempt-1")
    resend = make_message(sent_at=sent + timedelta(minutes=1), verification="attempt-1")
    make_message(sent_at=sent, verification="attempt-2")
    services.confirm(resend)
    totals = reader.get(STATS).json()["totals"]
    assert totals["superseded"] == 1
    assert (totals["verifications"], totals["verifications_converted"]) == (2, 1)
    assert totals["verification_conversion_rate"] == pytest.approx(0.5)
    assert (totals["resends"], totals["verifications_resent"]) == (1, 1)
    assert totals["mean_resends"] == pytest.approx(0.5)
    assert totals["resent_share"] == pytest.approx(0.5)
    assert first.verification_id == resend.verification_id
