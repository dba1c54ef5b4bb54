"""Helpers for the ``feedback_*`` command tests."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from feedback_app.models import Message, MessageEvent, ProviderCall


def run(name: str, *args: str) -> str:
    """Run a command as ``manage.py`` would (arguments as strings) and return its output."""
    out = StringIO()
    call_command(name, *args, stdout=out, stderr=out)
    return out.getvalue()


def snapshot() -> list[tuple]:
    """Every row that matters, to show a command changed nothing."""
    return [
        sorted(model.objects.values_list(), key=str)
        for model in (Message, MessageEvent, ProviderCall)
    ]


@pytest.fixture
def cli():
    return run
