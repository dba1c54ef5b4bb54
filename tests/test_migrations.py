"""Data migrations: what they do to rows written before them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from feedback_app.models import QuarterHourTotal

BEFORE_TOTALS = [("feedback_app", "0008_quarter_hour_rollups")]


def migrate(targets) -> MigrationExecutor:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    executor.loader.build_graph()  # what was applied, for the next call
    return executor


@pytest.mark.django_db(transaction=True)
def test_0009_adds_up_the_quarter_hours_already_written():
    """The refresh state is kept, so reports reading the new totals must find them filled."""
    executor = migrate(BEFORE_TOTALS)
    quarters = executor.loader.project_state(BEFORE_TOTALS).apps.get_model(
        "feedback_app", "QuarterHourRollup"
    )
    start = datetime(2026, 12, 1, 10, 15, tzinfo=UTC)
    quarter = {"purpose": "otp", "channel": "sms", "country": "US"}
    quarters.objects.create(
        start=start,
        provider="twilio",
        attempted=3,
        confirmed=2,
        confirm_lt_5s=2,
        confirm_seconds_max=4.0,
        **quarter,
    )
    quarters.objects.create(
        start=start,
        provider="aws_sms",
        attempted=4,
        confirmed=1,
        confirm_lt_5s=1,
        confirm_seconds_max=2.5,
        **quarter,
    )
    quarters.objects.create(
        start=start + timedelta(minutes=15), provider="twilio", attempted=1, **quarter
    )
    migrate(executor.loader.graph.leaf_nodes())
    assert list(
        QuarterHourTotal.objects.order_by("start").values_list(
            "start", "attempted", "confirmed", "confirm_lt_5s", "confirm_seconds_max"
        )
    ) == [(start, 7, 3, 3, 4.0), (start + timedelta(minutes=15), 1, 0, 0, None)]
