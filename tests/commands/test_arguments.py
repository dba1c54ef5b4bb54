"""Shared argument parsing and the progress reporter of the commands."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management.base import CommandError, OutputWrapper
from django.utils import timezone

from feedback_app.management.arguments import (
    parse_choice,
    parse_duration,
    parse_moment,
    parse_positive_int,
    parse_range,
)
from feedback_app.management.progress import Progress

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("2w", 1209600)],
)
def test_durations_take_a_number_and_a_unit(value, expected):
    assert parse_duration(value, "--x") == timedelta(seconds=expected)


def test_moments_are_durations_ago_dates_or_times_in_the_current_time_zone():
    assert parse_moment("7d", "--since", NOW) == NOW - timedelta(days=7)
    with timezone.override("Europe/Berlin"):
        day = parse_moment("2026-11-01", "--since", NOW)
        assert day.isoformat() == "2026-11-01T00:00:00+01:00"
    assert parse_moment("2026-11-01T12:30+00:00", "--since", NOW) == datetime(
        2026, 11, 1, 12, 30, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value",
    [
        "",
        "7",
        "7y",
        "-7d",
        "yesterday",
        "2026-02-30",
        "2026-13-01",
        # Beyond what dates hold: these overflowed with a traceback.
        "1000000d",
        "99999999999w",
        "0001-01-01T00:30",
        "9999-12-31",
    ],
)
def test_a_bad_moment_names_the_option(value):
    with pytest.raises(CommandError, match="--since must be"):
        parse_moment(value, "--since", NOW)


def test_a_range_must_run_forwards():
    assert parse_range("7d", "1d", NOW) == (NOW - timedelta(days=7), NOW - timedelta(days=1))
    with pytest.raises(CommandError, match="--since .* must be before --until"):
        parse_range("1d", "7d", NOW)


def test_choices_and_counts_are_checked():
    assert parse_choice(None, "--by", ["day"]) is None
    with pytest.raises(CommandError, match="--by must be one of day, country"):
        parse_choice("week", "--by", ["day", "country"])
    assert parse_positive_int("25", "--batch-size") == 25
    for bad in ("0", "-1", "1.5", "ten"):
        with pytest.raises(CommandError, match="--batch-size must be a whole number"):
            parse_positive_int(bad, "--batch-size")
    with pytest.raises(CommandError, match="from 1 to 10"):
        parse_positive_int("11", "--batch-size", 10)


class _Terminal(StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_bar_on_a_terminal():
    out = _Terminal()
    progress = Progress(OutputWrapper(out), 200, "messages")
    progress.update(50)
    progress.update(200)
    progress.finish()
    text = out.getvalue()
    assert "\r  [#######" in text and " 25% 50 / 200 messages" in text
    assert "100% 200 / 200 messages" in text and text.endswith("\n")


def test_progress_is_a_line_per_tenth_elsewhere_and_nothing_when_disabled():
    out = StringIO()
    progress = Progress(OutputWrapper(out), 1000, "messages")
    for done in range(10, 1001, 10):
        progress.update(done)
    progress.finish()
    lines = out.getvalue().splitlines()
    assert len(lines) == 11  # 0-9 %, then each tenth up to 100 %
    assert lines[-1] == "  1,000 / 1,000 messages" and "\r" not in out.getvalue()
    quiet = StringIO()
    progress = Progress(OutputWrapper(quiet), 10, "messages", enabled=False)
    progress.update(10)
    progress.finish()
    assert quiet.getvalue() == ""
