"""The API reads JSON only: one wire format, so types in the schema are the types received."""

from __future__ import annotations

import json
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing what it lets through but nothing downstream can handle."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # DRF turns ValueError into a 400 but not this, and deep nesting is only an attack.
            raise ParseError("JSON parse error - nested too deeply") from exc
        try:
            # "\ud800" is valid JSON but no valid text: the database, the renderer and even an
            # error message quoting it would fail on it.
            json.dumps(data, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise ParseError("JSON parse error - lone surrogate in a string") from exc
        return data
