"""The base class of the ``feedback_*`` commands: every bad argument is a ``CommandError``.

Django's parser lets argparse handle its own errors (an unknown option, a missing value, a
value its ``type=`` refuses) when a command runs from the command line: argparse prints them
and exits with status 2. The issue asks for status 1 and a clear message for every bad
argument, as ``CommandError`` gives, so these commands use a parser that exits with 1.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn

from django.core.management.base import BaseCommand, CommandError, CommandParser

#: The status a ``CommandError`` exits with (its default ``returncode``).
EXIT_STATUS = 1


class FeedbackCommandParser(CommandParser):
    """A ``CommandParser`` whose errors exit with status 1 (``CommandError``'s), not 2."""

    def error(self, message: str) -> NoReturn:
        if not self.called_from_command_line:
            raise CommandError(f"Error: {message}")  # as Django's parser does for call_command
        self.print_usage(sys.stderr)
        self.exit(EXIT_STATUS, f"CommandError: {message} (see {self.prog} --help).\n")


class FeedbackCommand(BaseCommand):
    """Base of the app's commands: argument errors exit with status 1, like ``CommandError``,
    and option values are checked in ``clean()`` before anything else runs."""

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        """Parse and check the option values; returns the options ``handle()`` receives.

        Runs before Django's system checks, which may open the database (Django 6.1's model
        checks ask it about JSON support): a refused value touches nothing.
        """
        return options

    def execute(self, *args: Any, **options: Any) -> str | None:
        return super().execute(*args, **self.clean(options))

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # BaseCommand builds a plain CommandParser and has no hook for its class; the subclass
        # only overrides error(), so swapping the class of the finished parser is safe.
        parser.__class__ = FeedbackCommandParser
        return parser
