"""Cursor pagination of the message list: newest first, stable while messages arrive."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request


class MessageCursorPagination(CursorPagination):
    # sent_at never changes after tracking; the id breaks ties between equal times.
    ordering = ("-sent_at", "id")
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500

    def get_page_size(self, request: Request) -> int:
        # Refused when out of range, like a bad filter, where DRF would silently use another.
        raw = request.query_params.get(self.page_size_query_param, "")
        if raw == "":
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 6) or not (
            1 <= int(raw) <= self.max_page_size
        ):
            message = _("Give a whole number from 1 to %(max)d.") % {"max": self.max_page_size}
            raise ValidationError({self.page_size_query_param: [ErrorDetail(message, "invalid")]})
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
                parameter["description"] = f"Messages per page (default {self.page_size})."
        return parameters

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        # DRF puts the position into a filter unchecked; a forged one must be a 404 like any
        # other bad cursor, not a database error.
        if cursor is not None and cursor.position is not None and not _aware(cursor.position):
            raise NotFound(self.invalid_cursor_message)
        return cursor


def _aware(text: Any) -> bool:
    try:
        value = parse_datetime(text)
    except (TypeError, ValueError):
        return False
    return value is not None and timezone.is_aware(value) and 1 < value.year < 9999
