"""``manage.py feedback_report``: the report's numbers in three formats, and refused arguments."""

import csv
import io
import json
from datetime import datetime, timedelta

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from feedback_app import services
from feedback_app.reports import ReportFilters, conversion_report
from tests.factories import NUMBERS, make_message

from .conftest import run, snapshot

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages():
    now = timezone.now()
    for index in range(3):
        message = make_message(to=NUMBERS["US"], sent_at=now - timedelta(hours=index + 1))
        if index:
            services.confirm(message, at=message.sent_at + timedelta(seconds=30))
    make_message(to=NUMBERS["GB"], purpose="login", sent_at=now - timedelta(hours=2))
    # Outside the default 30 days: counted only with a wider --since.
    make_message(to=NUMBERS["DE"], sent_at=now - timedelta(days=40))


def test_table_has_one_row_per_group_and_the_total_last(messages):
    output = run("feedback_report", "--by", "country")
    lines = output.splitlines()
    assert lines[0].split()[:4] == ["country", "sent", "delivered", "confirmed"]
    rows = {line.split()[0]: line.split() for line in lines[2:] if not line.startswith("-")}
    assert list(rows) == ["US", "GB", "total"]
    assert rows["US"][1:4] == ["3", "0", "2"] and rows["US"][8] == "66.7%"
    assert rows["total"][1] == "4" and rows["total"][8] == "50.0%"
    assert "DE" not in output


def test_csv_and_json_carry_the_numbers_of_conversion_report(messages):
    since = "60d"
    expected = conversion_report(
        ReportFilters(sent_after=timezone.now() - timedelta(days=60)), "purpose"
    )
    rows = list(
        csv.DictReader(
            io.StringIO(
                run("feedback_report", "--since", since, "--by", "purpose", "--format", "csv")
            )
        )
    )
    assert [row["purpose"] for row in rows] == ["otp", "login", "total"]
    assert int(rows[0]["attempted"]) == expected.rows[0].totals.attempted == 4
    assert float(rows[-1]["conversion_rate"]) == pytest.approx(expected.totals.conversion_rate)
    data = json.loads(
        run("feedback_report", "--since", since, "--format", "json", "--by", "purpose")
    )
    assert data["by"] == "purpose" and "sent_after" in data["filters"]
    assert data["totals"]["attempted"] == 5 and data["totals"]["confirmed"] == 2
    assert [row["key"] for row in data["rows"]] == ["otp", "login"]
    assert data["rows"][0]["median_seconds_to_confirm"] == pytest.approx(30)


def test_filters_and_range_narrow_the_report(messages):
    data = json.loads(run("feedback_report", "--format", "json", "--country", "gb"))
    assert data["totals"]["attempted"] == 1
    data = json.loads(run("feedback_report", "--format", "json", "--since", "90m", "--by", "day"))
    assert data["totals"]["attempted"] == 1 and len(data["rows"]) == 1
    data = json.loads(
        run("feedback_report", "--format", "json", "--since", "60d", "--until", "30d")
    )
    assert data["totals"]["attempted"] == 1


def test_until_alone_reports_the_30_days_before_it(messages):
    # 40 days ago (DE) is inside the 30 days before "35d"; the recent ones are after it.
    data = json.loads(run("feedback_report", "--format", "json", "--until", "35d"))
    assert data["totals"]["attempted"] == 1
    since = datetime.fromisoformat(data["filters"]["sent_after"])
    until = datetime.fromisoformat(data["filters"]["sent_before"])
    assert until - since == timedelta(days=30)
    day = (timezone.localdate() - timedelta(days=40)).isoformat()
    data = json.loads(run("feedback_report", "--format", "json", "--until", day))
    assert data["totals"]["attempted"] == 0
    assert data["filters"]["sent_after"].startswith(
        (timezone.localdate() - timedelta(days=70)).isoformat()
    )


def test_an_empty_range_prints_a_total_of_zero():
    output = run("feedback_report")
    assert output.splitlines()[-1].split()[:2] == ["total", "0"]
    assert "-" in output.splitlines()[-1].split()  # rates are undefined, not 0 %


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--by", "week"], "--by must be one of day, country"),
        (["--format", "xml"], "--format must be one of table, csv, json"),
        (["--since", "last week"], "--since must be"),
        (["--since", "1d", "--until", "7d"], "must be before --until"),
        (["--channel", "fax"], "--channel must be one of"),
        (["--feedback", "maybe"], "--feedback must be one of"),
        (["--delivery-status", "lost"], "--delivery-status must be one of"),
        (["--provider", "twillio"], "--provider must be one of"),
        (["--country", "USA"], "--country must be a two-letter code or __none__"),
    ],
)
def test_bad_arguments_raise_command_error(messages, args, message):
    before = snapshot()
    with pytest.raises(CommandError, match=message):
        run("feedback_report", *args)
    assert snapshot() == before


def test_csv_escapes_a_sender_that_a_spreadsheet_would_run_as_a_formula():
    make_message(sender="=HYPERLINK(1)")
    make_message(sender="+14155550100")
    output = run("feedback_report", "--by", "sender", "--format", "csv")
    keys = [row["sender"] for row in csv.DictReader(io.StringIO(output))]
    assert "'=HYPERLINK(1)" in keys and "=HYPERLINK(1)" not in keys
    assert "+14155550100" in keys  # a plain number stays readable


def test_none_selects_the_messages_without_a_value_as_on_the_dashboard(messages):
    make_message(sender="ACME")
    chat = make_message(to="arn:aws:chime:us-east-1:1:app-instance/a/channel/b", channel="chat")
    assert chat.country == ""

    def totals(*args: str) -> dict:
        return json.loads(run("feedback_report", "--format", "json", *args))["totals"]

    assert totals("--country", "__none__")["attempted"] == 1
    assert totals("--sender", "__none__")["attempted"] == totals()["attempted"] - 1
    assert totals("--country", "")["attempted"] == totals()["attempted"]  # empty: any
