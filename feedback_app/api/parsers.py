"""The API reads JSON only: one wire format, so types in the schema are the types received."""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            # DRF turns ValueError into a 400 but not this, and deep nesting is only an attack.
            raise ParseError("JSON parse error - nested too deeply") from exc
