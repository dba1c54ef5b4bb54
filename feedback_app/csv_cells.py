"""CSV cells safe to open in a spreadsheet, for every CSV the app writes (the dashboard's
downloads, ``feedback_report --format csv``)."""

from __future__ import annotations

import re
from datetime import datetime

from django.utils import timezone

#: A cell a spreadsheet would run as a formula starts with one of these (OWASP, CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: A plain number (a sender like +14155550100): a spreadsheet reads it as a number, never as a
#: formula, so it is written as it is and stays readable.
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?")


def csv_cell(value: object) -> object:
    """``value`` safe to open in a spreadsheet: text that would start a formula is prefixed
    with ``'`` (OWASP's advice), except plain numbers; other values are unchanged."""
    if isinstance(value, datetime):
        return timezone.localtime(value).isoformat()
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _NUMBER.fullmatch(value):
        return f"'{value}"
    return value
