"""``manage.py feedback_demo``: seed recorded demo history (see ``feedback_app.demo``)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ... import demo
from ...models import Message

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105  (a local demo account, printed on purpose)


class Command(BaseCommand):
    help = (
        "Seed realistic message history for the providers twilio, aws_sms and chime without "
        "calling any of them: messages over the last --days days with their delivery and "
        "feedback events and the conversion reports that would have been sent. Recipients are "
        "synthetic and stored only hashed and masked. The same --seed gives the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=demo.DEFAULT_DAYS,
            help="Spread the messages over this many days up to now (default %(default)s).",
        )
        parser.add_argument(
            "--messages",
            type=int,
            default=demo.DEFAULT_MESSAGES,
            help="How many messages to create (default %(default)s).",
        )
        parser.add_argument(
            "--seed",
            type=int,
            default=demo.DEFAULT_SEED,
            help="Random seed; the same seed on an empty database gives the same data "
            "(default %(default)s).",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing if any message exists already (reuse the existing data).",
        )
        parser.add_argument(
            "--superuser",
            action="store_true",
            help=f"Create the superuser {DEMO_USERNAME!r} with password {DEMO_PASSWORD!r} if "
            "missing, and print the credentials.",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="Do not print progress while seeding."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days, messages = options["days"], options["messages"]
        # Check everything before writing anything, the superuser included.
        try:
            demo.check_options(days, messages)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc

        if options["superuser"]:
            self._superuser()

        if options["if_empty"] and Message.objects.exists():
            count = Message.objects.count()
            self.stdout.write(f"{count:,} messages exist already: reusing the existing data.")
            return

        progress = None if options["no_progress"] else self._progress()
        started = time.monotonic()
        try:
            created = demo.seed(days, messages, options["seed"], progress=progress)
        except ImproperlyConfigured as exc:
            raise CommandError(f"Cannot seed: {exc}") from exc
        elapsed = time.monotonic() - started
        if progress is not None and self.stdout.isatty():
            self.stdout.write("")  # end the progress line
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {created:,} messages over {days} days for "
                f"{', '.join(demo.PROVIDERS)} in {elapsed:.1f} s "
                f"({created / max(elapsed, 1e-9):,.0f} messages/s)."
            )
        )

    def _superuser(self) -> None:
        User = get_user_model()
        lookup = {User.USERNAME_FIELD: DEMO_USERNAME}
        if User._default_manager.filter(**lookup).exists():
            note = "exists already"
        else:
            fields: dict[str, Any] = dict(lookup)
            if "email" in {f.name for f in User._meta.get_fields()}:
                fields["email"] = "demo@example.com"
            with transaction.atomic():
                User._default_manager.create_superuser(password=DEMO_PASSWORD, **fields)
            note = "created"
        self.stdout.write(
            f"Superuser {note}: username {DEMO_USERNAME!r}, password {DEMO_PASSWORD!r}."
        )

    def _progress(self) -> demo.ProgressCallback:
        tty = self.stdout.isatty()
        last = [-1]

        def report(done: int, total: int) -> None:
            if tty:
                self.stdout.write(f"\r  {done:,} / {total:,} messages", ending="")
                self.stdout.flush()
                return
            # Not a terminal (a log, a pipe): one line per tenth instead of a line per batch.
            tenth = done * 10 // total
            if tenth != last[0]:
                last[0] = tenth
                self.stdout.write(f"  {done:,} / {total:,} messages")

        return report
