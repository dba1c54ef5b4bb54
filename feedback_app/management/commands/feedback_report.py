"""``manage.py feedback_report``: the conversion report (``feedback_app.reports``) for a range."""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, fields
from datetime import date, timedelta
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from ...csv_cells import csv_cell
from ...providers.base import provider_keys
from ...reports import BREAKDOWNS, NONE, Report, ReportFilters, Totals, conversion_report
from ...states import Channel, Delivery, Feedback
from ..arguments import MOMENT_HELP, parse_choice, parse_range
from ..base import FeedbackCommand

FORMATS = ("table", "csv", "json")
#: The range without --since: this long, up to --until (or now).
DEFAULT_SPAN = timedelta(days=30)
COLUMNS = [f.name for f in fields(Totals)]
#: Short table headings; csv and json use the field names.
HEADINGS = {
    "attempted": "sent",
    "delivered_ok": "delivered",
    "confirmed": "confirmed",
    "confirmed_late": "late",
    "failed": "failed",
    "expired": "expired",
    "pending": "pending",
    "conversion_rate": "conversion",
    "delivery_rate": "delivery",
    "median_seconds_to_confirm": "median s",
    "p90_seconds_to_confirm": "p90 s",
    "superseded": "superseded",
    "verifications": "verif",
    "verifications_converted": "verif conv",
    "verification_conversion_rate": "verif conversion",
    "resends": "resends",
    "verifications_resent": "resent",
    "mean_resends": "resends/verif",
    "resent_share": "resent share",
}
#: Filters with a closed vocabulary, checked before the query runs.
CHOICES = {
    "channel": Channel.values,
    "feedback": Feedback.values,
    "delivery_status": Delivery.values,
}


class Command(FeedbackCommand):
    help = (
        "Print the conversion report (sent, delivered, confirmed, late, failed, expired, "
        "conversion and delivery rates, median and p90 seconds to confirm, superseded; "
        "verifications, their conversion and resends) for messages sent in a range, in total "
        "and grouped with --by. The numbers are the dashboard's and the API's "
        "(feedback_app.reports)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--since",
            help=f"From ({MOMENT_HELP}); default {DEFAULT_SPAN.days} days before --until.",
        )
        parser.add_argument("--until", help=f"Up to, excluded ({MOMENT_HELP}); default now.")
        parser.add_argument(
            "--by", metavar="{" + ",".join(BREAKDOWNS) + "}", help="One row per group."
        )
        parser.add_argument(
            "--format",
            default="table",
            metavar="{" + ",".join(FORMATS) + "}",
            help="Output format (default %(default)s).",
        )
        parser.add_argument("--provider", help="Only this provider key (twilio, aws_sms...).")
        parser.add_argument("--purpose", help="Only this purpose (otp, login...).")
        parser.add_argument("--channel", help=f"Only this channel ({', '.join(Channel.values)}).")
        parser.add_argument("--country", help="Only this country (ISO code: US, GB...).")
        parser.add_argument("--sender", help="Only this sender.")
        parser.add_argument("--feedback", help=f"Only this state ({', '.join(Feedback.values)}).")
        parser.add_argument(
            "--delivery-status", help=f"Only this status ({', '.join(Delivery.values)})."
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        parse_choice(options["by"], "--by", BREAKDOWNS)
        parse_choice(options["format"], "--format", FORMATS)
        now = timezone.now()
        since, until = parse_range(options["since"], options["until"], now)
        if since is None:
            # Relative to --until, so "--until 2026-01-01" alone is the 30 days before it.
            since = (until or now) - DEFAULT_SPAN
        for name, allowed in CHOICES.items():
            parse_choice(options[name], f"--{name.replace('_', '-')}", allowed)
        parse_choice(options["provider"] or None, "--provider", provider_keys())
        country = (options["country"] or "").upper()
        if country and country != NONE.upper() and not (len(country) == 2 and country.isalpha()):
            raise CommandError(f"--country must be a two-letter code or {NONE}, not {country!r}.")
        # As on the dashboard: empty means any, __none__ the messages without a value.
        dimensions = {
            name: None if not value else "" if value.lower() == NONE else value
            for name, value in {
                "provider": options["provider"],
                "purpose": options["purpose"],
                "channel": options["channel"],
                "country": country,
                "sender": options["sender"],
                "feedback": options["feedback"],
                "delivery_status": options["delivery_status"],
            }.items()
        }
        filters = ReportFilters(**dimensions, sent_after=since, sent_before=until)
        return {**options, "filters": filters}

    def handle(self, *args: Any, **options: Any) -> None:
        by, output, filters = options["by"], options["format"], options["filters"]
        try:
            report = conversion_report(filters, by)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        if output == "json":
            self.stdout.write(json.dumps(as_json(report), indent=2))
        elif output == "csv":
            self.write_csv(report)
        else:
            self.write_table(report)

    def write_csv(self, report: Report) -> None:
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow([report.by or "group", *COLUMNS])
        for key, totals in _rows(report):
            writer.writerow([csv_cell(key), *(_plain(getattr(totals, c)) for c in COLUMNS)])

    def write_table(self, report: Report) -> None:
        header = [report.by or "", *(HEADINGS[c] for c in COLUMNS)]
        lines = [
            [key, *(_cell(column, getattr(totals, column)) for column in COLUMNS)]
            for key, totals in _rows(report)
        ]
        widths = [max(len(row[i]) for row in [header, *lines]) for i in range(len(header))]

        def line(cells: list[str]) -> str:
            first, *rest = cells
            return "  ".join(
                [first.ljust(widths[0])]
                + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
            )

        self.stdout.write(line(header))
        self.stdout.write("  ".join("-" * w for w in widths))
        for cells in lines[:-1]:
            self.stdout.write(line(cells))
        if report.rows:
            self.stdout.write("  ".join("-" * w for w in widths))
        self.stdout.write(line(lines[-1]))


def _key(key: date | str) -> str:
    if isinstance(key, date):
        return key.isoformat()
    return key or "(none)"


def _rows(report: Report) -> list[tuple[str, Totals]]:
    """The groups, then the total (always last)."""
    return [(_key(row.key), row.totals) for row in report.rows] + [("total", report.totals)]


def _plain(value: float | int | None) -> str:
    return "" if value is None else str(round(value, 4) if isinstance(value, float) else value)


def _cell(column: str, value: float | int | None) -> str:
    if value is None:
        return "-"
    if column.endswith("_rate") or column.endswith("_share"):
        return f"{value:.1%}"
    if column == "mean_resends":
        return f"{value:.2f}"
    if isinstance(value, float):
        return f"{value:.1f}"
    return f"{value:,}"


def as_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data: dates and datetimes as ISO 8601 strings."""
    filters = {
        name: value.isoformat() if hasattr(value, "isoformat") else value
        for name, value in asdict(report.filters).items()
        if value is not None
    }
    return {
        "filters": filters,
        "by": report.by,
        "totals": asdict(report.totals),
        "rows": [
            {
                "key": row.key.isoformat() if isinstance(row.key, date) else row.key,
                **asdict(row.totals),
            }
            for row in report.rows
        ],
    }
