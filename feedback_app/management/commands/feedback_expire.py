"""``manage.py feedback_expire``: expire overdue messages now, as the schedule does every minute."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.management.base import CommandParser
from django.utils import timezone

from ... import services
from ...models import Message
from ...states import Feedback
from ..base import FeedbackCommand
from ..progress import Progress


class Command(FeedbackCommand):
    help = (
        "Move every message still pending past its feedback deadline to expired, now "
        "(feedback_app.services.expire_overdue, which the expire_overdue schedule runs every "
        "minute), in batches of EXPIRE_BATCH messages, one transaction each. Providers that "
        "take a failed report (aws_sms) get one through the outbox. Safe to interrupt and to "
        "run at any time, also beside the schedule."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the overdue messages; change nothing."
        )
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Print no progress (by default a bar on a terminal, a line per tenth otherwise).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["dry_run"]:
            self.stdout.write(f"{overdue_count(now):,} overdue messages would expire (dry run).")
            return
        enabled = not options["no_progress"]
        # The count is only for the bar; messages that become overdue meanwhile wait for the
        # next run, since every batch uses the same ``now``.
        total = overdue_count(now) if enabled else None
        progress = Progress(self.stdout, total, "messages", enabled=enabled)
        try:
            expired = services.expire_overdue(now, progress=progress.update)
        finally:
            progress.finish()
        self.stdout.write(self.style.SUCCESS(f"Expired {expired:,} overdue messages."))


def overdue_count(now: datetime) -> int:
    """The messages ``services.expire_overdue(now)`` would expire (``feedback_app.expiry``)."""
    return Message.objects.filter(feedback=Feedback.PENDING, feedback_deadline__lte=now).count()
