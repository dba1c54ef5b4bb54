"""``manage.py feedback_expire``: expire overdue messages now, as the schedule does every minute."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from ... import services
from ...models import Message
from ...states import Feedback


class Command(BaseCommand):
    help = (
        "Move every message still pending past its feedback deadline to expired, now "
        "(feedback_app.services.expire_overdue, which the expire_overdue schedule runs every "
        "minute). Providers that take a failed report (aws_sms) get one through the outbox. "
        "Safe to run at any time, also beside the schedule."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count the overdue messages; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        now = timezone.now()
        if options["dry_run"]:
            # The condition services.expire_overdue applies (feedback_app.expiry).
            overdue = Message.objects.filter(
                feedback=Feedback.PENDING, feedback_deadline__lte=now
            ).count()
            self.stdout.write(f"{overdue:,} overdue messages would expire (dry run).")
            return
        expired = services.expire_overdue(now)
        self.stdout.write(self.style.SUCCESS(f"Expired {expired:,} overdue messages."))
