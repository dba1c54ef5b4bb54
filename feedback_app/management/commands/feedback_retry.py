"""``manage.py feedback_retry``: put failed or given-up provider calls back in the queue."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandParser

from ... import outbox
from ...models import ProviderCall
from ...states import CallState, Operation
from ..arguments import MOMENT_HELP, parse_choice, parse_range
from ..base import FeedbackCommand

RETRYABLE = (CallState.FAILED, CallState.GAVE_UP)


class Command(FeedbackCommand):
    help = (
        "Re-queue provider calls (conversion reports) that failed or were given up, e.g. after "
        "fixing credentials or an outage: each starts a new round of attempts with a fresh "
        "max-age clock (feedback_app.outbox.retry_calls, as the admin action does). Filter by "
        "provider, operation, state and when the call ended."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", help="Only calls to this provider key.")
        parser.add_argument(
            "--operation", help=f"Only this operation ({', '.join(Operation.values)})."
        )
        parser.add_argument(
            "--state",
            help=f"Only {' or '.join(RETRYABLE)} calls (default both).",
        )
        parser.add_argument("--since", help=f"Only calls that ended from ({MOMENT_HELP}).")
        parser.add_argument("--until", help=f"Only calls that ended before ({MOMENT_HELP}).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the matching calls; change nothing."
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        parse_choice(options["operation"], "--operation", Operation.values)
        parse_choice(options["state"], "--state", RETRYABLE)
        since, until = parse_range(options["since"], options["until"])
        return {**options, "since": since, "until": until}

    def handle(self, *args: Any, **options: Any) -> None:
        operation, state = options["operation"], options["state"]
        since, until = options["since"], options["until"]
        calls = ProviderCall.objects.filter(state__in=[state] if state else RETRYABLE)
        if options["provider"]:
            calls = calls.filter(provider=options["provider"])
        if operation:
            calls = calls.filter(operation=operation)
        if since:
            calls = calls.filter(completed_at__gte=since)
        if until:
            calls = calls.filter(completed_at__lt=until)
        if options["dry_run"]:
            self.stdout.write(f"{calls.count():,} calls would be re-queued (dry run).")
            return
        count = outbox.retry_calls(queryset=calls)
        self.stdout.write(self.style.SUCCESS(f"Re-queued {count:,} calls."))
