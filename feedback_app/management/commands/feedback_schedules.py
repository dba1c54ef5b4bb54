"""``manage.py feedback_schedules``: create or verify the django-q2 schedules the app needs."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from ... import schedules
from ...conf import app_settings
from ...queue import DJANGO_Q
from ..base import FeedbackCommand


class Command(FeedbackCommand):
    help = (
        "Create the django-q2 schedules the app needs ("
        + ", ".join(name.removeprefix("feedback_app.") for name in schedules.SCHEDULES)
        + "; minutes from the SCHEDULES setting, cluster from DJANGO_Q_CLUSTER) or fix ones "
        "that differ. migrate does the same. Only with QUEUE 'django_q' (with 'django_tasks', "
        "feedback_worker runs the jobs). With --check, only report: exit status 1 when a "
        "schedule is missing or differs."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="Verify only; write nothing and fail if a schedule is missing or differs.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if app_settings.QUEUE != DJANGO_Q:
            raise CommandError(
                f"FEEDBACK_APP['QUEUE'] is {app_settings.QUEUE!r}: there are no django-q2 "
                "schedules to write. Run manage.py feedback_worker --periodic, or the jobs from "
                'cron (docs/deployment.md, "Periodic work").'
            )
        if options["check"]:
            outdated = schedules.outdated_schedules()
            if outdated:
                raise CommandError(
                    f"Missing or different: {', '.join(outdated)}. "
                    "Run manage.py feedback_schedules to fix them."
                )
            self.stdout.write(self.style.SUCCESS("All schedules are as configured."))
            return
        written = schedules.ensure_schedules()
        if written:
            self.stdout.write(self.style.SUCCESS(f"Created or updated: {', '.join(written)}."))
        else:
            self.stdout.write("All schedules were already as configured.")
