"""FEEDBACK_APP["REPORTS_DATABASE"]: the dashboard, /api/stats/ and feedback_report read that
alias (here "reports", a test mirror of default: another connection to the same database) and
nothing else; writes never go there.

Transactional tests: the mirror's connection sees only what default has committed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from feedback_app import reports, rollups, services
from feedback_app.admin.dashboard import as_of_text
from feedback_app.reports import ReportFilters, conversion_report, data_as_of
from feedback_app.states import Delivery

from .admin.test_dashboard import DASHBOARD, reader
from .api.conftest import API, make_user, token_client
from .factories import NUMBERS, make_message
from .statements import SESSION

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "reports"])

START = datetime(2025, 4, 1, 9, tzinfo=UTC)
RANGE = {"range": "custom", "start": "2025-04-01", "end": "2025-04-02"}
#: What a report reads: any of the app's tables.
APP_TABLE = re.compile(r"feedback_app_\w+")
READ = re.compile(r"\s*(SELECT|WITH)\b", re.IGNORECASE)


@pytest.fixture
def on_reports(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "REPORTS_DATABASE": "reports"}


@pytest.fixture
def history(clock):
    """Six messages on 1 April 2025 (US and GB), four confirmed, then a rollup refresh, then
    one more confirmation the rollups do not hold yet (read from the messages)."""
    messages = [
        make_message(
            sent_at=START + timedelta(hours=index),
            to=NUMBERS["US" if index % 2 else "GB"],
            delivery_status=Delivery.DELIVERED,
        )
        for index in range(6)
    ]
    for message in messages[:3]:
        services.confirm(message, at=message.sent_at + timedelta(seconds=30))
    clock.advance(minutes=10)
    rollups.refresh()
    clock.advance(minutes=10)
    services.confirm(messages[3], at=messages[3].sent_at + timedelta(seconds=40))
    return messages


@contextmanager
def queries_on(*aliases: str) -> Iterator[dict[str, list[str]]]:
    """The SQL run on each alias inside the block."""
    captured: dict[str, list[str]] = {}
    with ExitStack() as stack:
        contexts = {
            alias: stack.enter_context(CaptureQueriesContext(connections[alias]))
            for alias in aliases
        }
        yield captured
    for alias, context in contexts.items():
        captured[alias] = [query["sql"] for query in context.captured_queries]


def app_tables(queries: list[str]) -> set[str]:
    return {table for sql in queries for table in APP_TABLE.findall(sql)}


def test_the_dashboard_reads_only_the_reports_alias(
    on_reports, history, client, django_user_model, clock
):
    client.force_login(reader(django_user_model))
    with queries_on("default", "reports") as queries:
        response = client.get(reverse(DASHBOARD), RANGE)
    assert response.status_code == 200
    assert response.context["totals"].attempted == 6
    assert response.context["totals"].confirmed == 4
    # The session and the user come from default; every report read from the reports alias.
    assert app_tables(queries["default"]) == set()
    read = app_tables(queries["reports"])
    assert {"feedback_app_rollupstate", "feedback_app_message"} <= read
    assert read & {"feedback_app_hourlyrollup", "feedback_app_dailyrollup"}
    assert {"feedback_app_guardblock", "feedback_app_blockedsend"} <= read
    assert not [
        sql for sql in queries["reports"] if not (READ.match(sql) or sql.startswith(SESSION))
    ]
    # Not a standby: the reports database holds every write, so the data is as of now.
    assert response.context["data_as_of"] == clock.now
    assert "Data as of" in response.text


def test_the_stats_api_reads_only_the_reports_alias(on_reports, history, clock):
    client = token_client(make_user("view_report"))
    with queries_on("default", "reports") as queries:
        response = client.get(f"{API}/stats/", {"by": "country"})
    assert response.status_code == 200, response.content
    assert response.json()["totals"]["attempted"] == 6
    assert response.json()["data_as_of"] is not None
    assert app_tables(queries["default"]) <= {"feedback_app_idempotencyrecord"}
    assert "feedback_app_hourlyrollup" in app_tables(queries["reports"])


def test_feedback_report_reads_only_the_reports_alias(on_reports, history):
    out = io.StringIO()
    with queries_on("default", "reports") as queries:
        call_command(
            "feedback_report", "--since", "2025-04-01", "--until", "2025-04-02", stdout=out
        )
    assert re.search(r"^total\s+6\b", out.getvalue(), re.MULTILINE), out.getvalue()
    assert queries["default"] == []
    # No dimension filter: the totals come from the quarter-hour totals.
    assert "feedback_app_quarterhourtotal" in app_tables(queries["reports"])


def test_the_reports_alias_answers_like_default(on_reports, history):
    filters = ReportFilters(sent_after=START, sent_before=START + timedelta(days=1))
    assert conversion_report(filters, "country") == conversion_report(
        filters, "country", using="default"
    )


def test_writes_and_the_rollup_refresh_never_use_the_reports_alias(on_reports, clock):
    with queries_on("reports") as queries:
        services.confirm(make_message(sent_at=START), at=START + timedelta(seconds=5))
        services.fail(make_message(sent_at=START))
        make_message(sent_at=START)
        clock.advance(days=1)
        assert services.expire_overdue() == 1
        rollups.refresh()
        rollups.recompute([(START, START + timedelta(hours=1))])
    assert queries["reports"] == []


def test_the_reports_read_the_alias_they_are_given(history):
    """``using`` beats the setting; without either, "default"."""
    assert reports.reports_database() == "default"
    assert reports.reports_database("reports") == "reports"
    with queries_on("default", "reports") as queries:
        conversion_report(using="reports")
    assert queries["default"] == []
    assert queries["reports"]


def test_as_of_says_how_far_behind_a_lagging_database_is():
    now = datetime(2025, 4, 1, 12, tzinfo=UTC)
    assert "behind" not in as_of_text(now - timedelta(seconds=30), now)
    assert "(5.0 min behind" in as_of_text(now - timedelta(minutes=5), now)
    assert "unknown" in as_of_text(None, now)


def test_data_as_of_is_now_where_the_reports_read_the_written_database(clock):
    assert data_as_of() == clock.now
    assert data_as_of("reports") == clock.now
