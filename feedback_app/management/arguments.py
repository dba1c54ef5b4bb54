"""Argument parsing shared by the ``feedback_*`` commands: durations, moments, choices, counts.

Values are parsed in ``handle()`` rather than with argparse ``type=``/``choices=``, so every bad
value gets a ``CommandError`` that names the option and says what it takes (status 1, nothing
changed); what argparse itself refuses (an unknown option, a missing value) exits with status 1
too (``feedback_app.management.base``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.management.base import CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

#: Unit letter of a duration -> seconds.
UNITS: dict[str, int] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")

DURATION_HELP = "a duration (90s, 30m, 12h, 7d, 2w)"
MOMENT_HELP = "a date (2026-11-01), a date and time (2026-11-01T12:00), or a duration ago (7d)"


#: The longest duration taken: a century covers any history; more only overflows dates.
MAX_DURATION = timedelta(days=36500)


def parse_duration(value: str, option: str) -> timedelta:
    """``"7d"`` -> ``timedelta(days=7)``; ``CommandError`` naming ``option`` otherwise."""
    match = DURATION.match(value or "")
    if match is None:
        raise CommandError(f"{option} must be {DURATION_HELP}, not {value!r}.")
    seconds = int(match[1]) * UNITS[match[2]]
    if seconds > MAX_DURATION.total_seconds():
        raise CommandError(f"{option} must be at most {MAX_DURATION.days:,} days, not {value!r}.")
    return timedelta(seconds=seconds)


def parse_moment(value: str, option: str, now: datetime | None = None) -> datetime:
    """A point in time: a duration before ``now``, a date (its midnight) or a date and time.

    Dates and naive times are in the current time zone, as the report's days are.
    """
    now = now or timezone.now()
    if DURATION.match(value or ""):
        return now - parse_duration(value, option)
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is not None:
                moment = datetime(day.year, day.month, day.day)
    except ValueError:  # well-formed but impossible, e.g. 2026-02-30
        moment = None
    if moment is None:
        raise CommandError(f"{option} must be {MOMENT_HELP}, not {value!r}.")
    if not 1 < moment.year < 9999:  # the edges overflow once moved to UTC
        raise CommandError(f"{option} must be between the years 2 and 9998, not {value!r}.")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


def parse_range(
    since: str | None, until: str | None, now: datetime | None = None
) -> tuple[datetime | None, datetime | None]:
    """``--since`` and ``--until`` as datetimes; ``CommandError`` unless since < until."""
    now = now or timezone.now()
    start = parse_moment(since, "--since", now) if since else None
    end = parse_moment(until, "--until", now) if until else None
    if start is not None and end is not None and start >= end:
        raise CommandError(
            f"--since ({start:%Y-%m-%d %H:%M}) must be before --until ({end:%Y-%m-%d %H:%M})."
        )
    return start, end


def parse_choice(value: str | None, option: str, choices: Iterable[str]) -> str | None:
    """``value`` if it is one of ``choices`` (None passes through)."""
    allowed = list(choices)
    if value is not None and value not in allowed:
        raise CommandError(f"{option} must be one of {', '.join(allowed)}, not {value!r}.")
    return value


def parse_positive_int(value: str | int, option: str, maximum: int | None = None) -> int:
    """A whole number from 1 (to ``maximum``)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number < 1 or (maximum is not None and number > maximum):
        upper = f" to {maximum:,}" if maximum is not None else ""
        raise CommandError(f"{option} must be a whole number from 1{upper}, not {value!r}.")
    return number


def parse_int(value: str | int, option: str) -> int:
    """Any whole number (a random seed)."""
    try:
        return int(str(value).strip())
    except ValueError:
        raise CommandError(f"{option} must be a whole number, not {value!r}.") from None
