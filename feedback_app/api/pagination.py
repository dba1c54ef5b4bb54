"""Cursor pagination of the message list: newest first, stable while messages arrive."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError
from rest_framework.pagination import Cursor, CursorPagination
from rest_framework.request import Request

from ..models import Message


class MessageCursorPagination(CursorPagination):
    """Keyset pagination on ``(sent_at, id)``: newest first, ties in the order of the id.

    The cursor holds both the time and the id of the last message shown, so any number of
    messages sent at one instant pages through; DRF's own cursor keeps only the time and skips
    ties by an offset, capped at 1,000, where its ``next`` link then repeats forever.
    """

    ordering = "-sent_at"  # what the schema says; the id breaks ties (see paginate_queryset)
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

    def paginate_queryset(
        self, queryset: QuerySet[Message], request: Request, view: Any = None
    ) -> list[Message]:
        self.request = request
        self.base_url = request.build_absolute_uri()
        self.page_size = self.get_page_size(request)
        self.cursor = self.decode_cursor(request)
        backwards = bool(self.cursor and self.cursor.reverse)
        if self.cursor is not None:
            sent_at, pk = self.cursor.position
            if backwards:  # the page before: newer than the first message shown
                after = Q(sent_at__gt=sent_at) | Q(sent_at=sent_at, id__lt=pk)
            else:
                after = Q(sent_at__lt=sent_at) | Q(sent_at=sent_at, id__gt=pk)
            queryset = queryset.filter(after)
        order = ("sent_at", "-id") if backwards else ("-sent_at", "id")
        rows = list(queryset.order_by(*order)[: self.page_size + 1])
        more = len(rows) > self.page_size
        self.page = rows[: self.page_size]
        if backwards:
            self.page.reverse()
            self.has_next, self.has_previous = True, more
        else:
            self.has_next, self.has_previous = more, self.cursor is not None
        return self.page

    def get_next_link(self) -> str | None:
        if not (self.has_next and self.page):
            return None
        return self.encode_cursor(Cursor(offset=0, reverse=False, position=_key(self.page[-1])))

    def get_previous_link(self) -> str | None:
        if not (self.has_previous and self.page):
            return None
        return self.encode_cursor(Cursor(offset=0, reverse=True, position=_key(self.page[0])))

    def decode_cursor(self, request: Request) -> Cursor | None:
        cursor = super().decode_cursor(request)
        if cursor is None:
            return None
        # A forged position is a 404 like any other bad cursor, never a database error.
        position = _parse_key(cursor.position)
        if position is None:
            raise NotFound(self.invalid_cursor_message)
        return cursor._replace(position=position)


def _key(message: Message) -> str:
    return f"{message.sent_at.astimezone(UTC).isoformat()}|{message.pk}"


def _parse_key(text: Any) -> tuple[datetime, uuid.UUID] | None:
    """The (sent_at in UTC, id) a cursor's position names, or None when it names none."""
    moment, _separator, pk = str(text or "").partition("|")
    try:
        sent_at = parse_datetime(moment)
        if sent_at is None or timezone.is_naive(sent_at) or not 1 < sent_at.year < 9999:
            return None
        # In UTC: PostgreSQL refuses offsets of 16 hours or more, which Python accepts.
        return sent_at.astimezone(UTC), uuid.UUID(pk)
    except (TypeError, ValueError, OverflowError):
        return None
