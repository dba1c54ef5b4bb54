"""``manage.py feedback_purge``: delete messages older than the retention period."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import retention
from ...conf import app_settings
from ..arguments import MAX_DURATION, parse_positive_int
from ..base import FeedbackCommand
from ..progress import Progress

MAX_BATCH_SIZE = 100_000


class Command(FeedbackCommand):
    help = (
        "Delete messages sent more than --days days ago (default: the RETENTION_DAYS setting) "
        "with their events and provider calls, in batches of one transaction each. Messages "
        "with a report still pending or in flight are kept until it ends. Safe to interrupt "
        "and to run again: a re-run continues where the last one stopped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days", help="Keep this many days (default: RETENTION_DAYS, 90 unless set)."
        )
        parser.add_argument(
            "--batch-size",
            default=str(retention.DEFAULT_BATCH_SIZE),
            help="Messages deleted per transaction (default %(default)s).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would be deleted; delete nothing."
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Print no progress (by default a bar on a terminal, a line per tenth otherwise).",
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        days = options["days"]
        if days is None and app_settings.RETENTION_DAYS is None:
            raise CommandError("RETENTION_DAYS is None (keep everything): pass --days to purge.")
        return {
            **options,
            "days": None if days is None else parse_positive_int(days, "--days", MAX_DURATION.days),
            "batch_size": parse_positive_int(options["batch_size"], "--batch-size", MAX_BATCH_SIZE),
        }

    def handle(self, *args: Any, **options: Any) -> None:
        days, batch_size = options["days"], options["batch_size"]
        before = retention.cutoff(days)
        if options["dry_run"]:
            found = retention.count(before)
            self.stdout.write(
                f"{found.messages:,} messages sent before {before:%Y-%m-%d %H:%M %Z} would be "
                f"deleted, with {found.events:,} events and {found.calls:,} provider calls, and "
                f"{found.blocked_sends:,} refused sends (dry run)."
            )
            return
        enabled = not options["no_progress"]
        total = retention.count(before).messages if enabled else None
        progress = Progress(self.stdout, total, "messages", enabled=enabled)
        try:
            result = retention.purge(before, batch_size=batch_size, progress=progress.update)
        finally:
            progress.finish()
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {result.messages:,} messages sent before {before:%Y-%m-%d %H:%M %Z}, "
                f"with {result.events:,} events and {result.calls:,} provider calls, and "
                f"{result.blocked_sends:,} refused sends."
            )
        )
