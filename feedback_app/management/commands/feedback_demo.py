"""``manage.py feedback_demo``: seed recorded demo history (see ``feedback_app.demo``)."""

from __future__ import annotations

import time
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from ... import demo
from ...models import Message
from ..arguments import parse_int, parse_positive_int
from ..base import FeedbackCommand
from ..progress import Progress

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo"  # noqa: S105  (a local demo account, printed on purpose)


class Command(FeedbackCommand):
    help = (
        f"Seed realistic message history for the built-in providers ({', '.join(demo.PROVIDERS)}) "
        "without calling any of them: messages over the last --days days with their delivery and "
        "feedback events and the conversion reports that would have been sent. Recipients are "
        "synthetic and stored only hashed and masked. The same --seed gives the same data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            default=demo.DEFAULT_DAYS,
            help="Spread the messages over this many days up to now (default %(default)s).",
        )
        parser.add_argument(
            "--messages",
            default=demo.DEFAULT_MESSAGES,
            help="How many messages to create (default %(default)s).",
        )
        parser.add_argument(
            "--seed",
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
            "--no-progress",
            action="store_true",
            help="Print no progress (by default a bar on a terminal, a line per tenth otherwise).",
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        days = parse_positive_int(options["days"], "--days", demo.MAX_DAYS)
        messages = parse_positive_int(options["messages"], "--messages", demo.MAX_MESSAGES)
        seed = parse_int(options["seed"], "--seed")
        try:
            demo.check_options(days, messages)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        return {**options, "days": days, "messages": messages, "seed": seed}

    def handle(self, *args: Any, **options: Any) -> None:
        days, messages, rng_seed = options["days"], options["messages"], options["seed"]
        if options["superuser"]:
            self._superuser()

        if options["if_empty"] and Message.objects.exists():
            count = Message.objects.count()
            self.stdout.write(f"{count:,} messages exist already: reusing the existing data.")
            return

        progress = Progress(self.stdout, messages, "messages", enabled=not options["no_progress"])
        started = time.monotonic()
        try:
            created = demo.seed(days, messages, rng_seed, progress=progress.update)
        except ImproperlyConfigured as exc:
            raise CommandError(f"Cannot seed: {exc}") from exc
        finally:
            progress.finish()
        elapsed = time.monotonic() - started
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
