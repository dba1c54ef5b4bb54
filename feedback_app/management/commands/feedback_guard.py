"""``manage.py feedback_guard``: list, add and lift the guard's blocks (docs/guard.md)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import CommandError, CommandParser
from django.utils import timezone

from ... import blocks
from ...models import GuardBlock
from ..base import FeedbackCommand

ACTIONS = ("block_prefix", "block_country", "unblock", "evaluate")


class Command(FeedbackCommand):
    help = (
        "The SMS-pumping guard's blocks: without an action, list the blocks in force (--all: "
        "every block) with why they were made; --block-prefix or --block-country adds one "
        "(with --reason, and --hours to end it), --unblock ID lifts one, --evaluate runs the "
        "automatic blocks now (as the block_pumped_prefixes job does). Sends see a change "
        "within GUARD['BLOCKS_REFRESH'] seconds."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--all", action="store_true", help="List every block, lifted and ended ones too."
        )
        parser.add_argument(
            "--block-prefix", metavar="PREFIX", help="Block numbers starting with it (+23480)."
        )
        parser.add_argument(
            "--block-country", metavar="CC", help="Block a country (ISO code, e.g. NG)."
        )
        parser.add_argument(
            "--reason", help="Why (shown in the admin and the list); required to block."
        )
        parser.add_argument(
            "--hours",
            type=float,
            help="End the new block after this many hours (default: until lifted).",
        )
        parser.add_argument(
            "--unblock", metavar="ID", type=int, help="Lift the block with this id."
        )
        parser.add_argument(
            "--evaluate",
            action="store_true",
            help="Block the prefixes that stopped converting now; prints the new blocks.",
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        chosen = [name for name in ACTIONS if options[name] not in (None, False)]
        if len(chosen) > 1:
            raise CommandError(
                "Give one action: "
                + ", ".join("--" + name.replace("_", "-") for name in chosen)
                + " were given."
            )
        blocking = options["block_prefix"] is not None or options["block_country"] is not None
        if blocking and not (options["reason"] or "").strip():
            raise CommandError("--reason is required to block (say why; the admin shows it).")
        if not blocking and (options["reason"] is not None or options["hours"] is not None):
            raise CommandError("--reason and --hours go with --block-prefix or --block-country.")
        hours = options["hours"]
        if hours is not None and not 0 < hours <= 24 * 3650:
            raise CommandError(f"--hours must be a positive number of hours, not {hours!r}.")
        return options

    def handle(self, *args: Any, **options: Any) -> None:
        actor = "manage.py feedback_guard"
        if options["block_prefix"] is not None or options["block_country"] is not None:
            kind = GuardBlock.Kind.PREFIX if options["block_prefix"] else GuardBlock.Kind.COUNTRY
            value = options["block_prefix"] or options["block_country"]
            until = None
            if options["hours"] is not None:
                until = timezone.now() + timedelta(hours=options["hours"])
            try:
                block, created = blocks.block(
                    kind, value, reason=options["reason"], until=until, actor=actor
                )
            except ValidationError as exc:
                raise CommandError("; ".join(exc.messages)) from exc
            if created:
                self.stdout.write(self.style.SUCCESS(f"Blocked: {self.line(block)}"))
            else:
                self.stdout.write(f"Already blocked: {self.line(block)}")
            return
        if options["unblock"] is not None:
            try:
                lifted = blocks.unblock(options["unblock"], actor=actor)
            except GuardBlock.DoesNotExist as exc:
                raise CommandError(f"No block with id {options['unblock']}.") from exc
            if lifted:
                self.stdout.write(self.style.SUCCESS(f"Lifted block {options['unblock']}."))
            else:
                self.stdout.write(f"Block {options['unblock']} was no longer in force.")
            return
        if options["evaluate"]:
            created = blocks.block_pumped_prefixes()
            for block in created:
                self.stdout.write(self.style.WARNING(f"Blocked: {self.line(block)}"))
            self.stdout.write(f"{len(created)} new blocks.")
            return
        rows = GuardBlock.objects.all()
        if not options["all"]:
            rows = rows.filter(blocks.active_filter(timezone.now()))
        count = 0
        for block in rows.order_by("-since", "-id"):
            self.stdout.write(self.line(block))
            count += 1
        what = "blocks" if options["all"] else "blocks in force"
        self.stdout.write(f"{count} {what}.")

    @staticmethod
    def line(block: GuardBlock) -> str:
        """One block on one line: id, what, how long, who, why."""
        if block.unblocked_at:
            state = f"lifted {block.unblocked_at:%Y-%m-%d %H:%M} by {block.unblocked_by or '?'}"
        elif block.until:
            state = f"until {block.until:%Y-%m-%d %H:%M %Z}"
        else:
            state = "until lifted"
        origin = "automatic" if block.automatic else f"by {block.created_by or '?'}"
        return (
            f"#{block.pk} {block.kind} {block.value} since {block.since:%Y-%m-%d %H:%M}, "
            f"{state}, {origin}: {block.reason}"
        )
