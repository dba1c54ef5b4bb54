"""``manage.py feedback_sync``: ask providers for statuses that are still open."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ... import polling
from ..arguments import parse_positive_int
from ..base import FeedbackCommand
from ..progress import Progress

#: The most messages one run may ask about (a bound the database can hold).
MAX_LIMIT = 1_000_000_000


class Command(FeedbackCommand):
    help = (
        "Ask the providers about messages whose delivery status may still change: open statuses "
        "of polled providers (chime PENDING, sent within POLL_MAX_AGE), and statuses a provider "
        "may never move on by itself (twilio 'sent' when the carrier sends no receipt) once "
        "SYNC_STALE_AFTER seconds old, sent within SYNC_MAX_AGE. Each message is fetched once "
        "through the provider's SDK; statuses only move forward."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--limit", help="Ask about at most this many messages, oldest first.")
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Print no progress (by default a bar on a terminal, a line per tenth otherwise).",
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        limit = options["limit"]
        if limit is not None:
            limit = parse_positive_int(limit, "--limit", MAX_LIMIT)
        return {**options, "limit": limit}

    def handle(self, *args: Any, **options: Any) -> None:
        limit = options["limit"]
        progress = Progress(self.stdout, None, "messages", enabled=not options["no_progress"])
        try:
            result = polling.sync_statuses(limit=limit, progress=progress.update)
        finally:
            progress.finish()
        self.stdout.write(
            self.style.SUCCESS(
                f"Asked about {result.checked:,} messages: {result.changed:,} changed status, "
                f"{result.errors:,} provider errors."
            )
        )
