"""``Idempotency-Key`` on the POSTs that create or send: a retry gets the first response.

The first request with a key claims it (a row, unique per user, key and path) before it runs;
a retry with the same body gets the stored response without running again, a retry with
another body gets 422, and a retry while the first still runs gets 409. Only successful
responses are kept: after an error nothing was written, so the key is released and a retry
runs the request again. Keys are remembered for ``FEEDBACK_APP["IDEMPOTENCY_TTL"]`` seconds.

The row holds an HMAC of the request body, never the body: a send carries the code.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import app_settings
from ..models import IdempotencyRecord
from .exceptions import IdempotencyKeyInUse, IdempotencyKeyReused

HEADER = "Idempotency-Key"
#: Set on a replayed response.
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
#: Printable ASCII without spaces: what clients put in it (UUIDs, ULIDs, hashes).
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)

View = Callable[..., Response]


def body_fingerprint(data: Any) -> str:
    """A keyed hash of a parsed body: equal for equal JSON whatever its spacing or key order.

    Keyed (SECRET_KEY), because a body holds a phone number and a short code: a plain hash of
    so little entropy could be reversed by trying them all.
    """
    canonical = json.dumps(
        data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return salted_hmac("feedback_app.idempotency", canonical, algorithm="sha256").hexdigest()


def _cutoff(now: datetime) -> datetime:
    return now - timedelta(seconds=int(app_settings.IDEMPOTENCY_TTL))


def purge_expired(now: datetime | None = None) -> int:
    """Delete every record older than the TTL; returns how many. Safe to run at any time."""
    deleted, _by_model = IdempotencyRecord.objects.filter(
        created_at__lt=_cutoff(now or timezone.now())
    ).delete()
    return deleted


def _claim(request: Request, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """The record for this key: (new record, True) if this request claimed it."""
    now = timezone.now()
    user = request.user
    # Purging this user's expired keys on each claim keeps the table bounded without a schedule.
    IdempotencyRecord.objects.filter(user=user, created_at__lt=_cutoff(now)).delete()
    try:
        # A savepoint, so a lost race does not break a surrounding (ATOMIC_REQUESTS) transaction.
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                key=key,
                user=user,
                method=request.method,
                path=request.path[:255],
                request_hash=fingerprint,
                created_at=now,
            )
        return record, True
    except IntegrityError:
        record = IdempotencyRecord.objects.filter(
            user=user, key=key, path=request.path[:255]
        ).first()
        if record is None:
            # The first request failed and released the key just now: let the client retry.
            raise IdempotencyKeyInUse() from None
        return record, False


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused()
    if record.response_status is None:
        raise IdempotencyKeyInUse()
    return Response(
        record.response_body, status=record.response_status, headers={REPLAYED_HEADER: "true"}
    )


def idempotent(view_method: View) -> View:
    """Make a DRF view method honour ``Idempotency-Key`` (runs after authentication)."""

    @functools.wraps(view_method)
    def wrapper(view: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None or not request.user.is_authenticated:
            return view_method(view, request, *args, **kwargs)
        if not _KEY.match(key):
            raise ValidationError(
                {HEADER: [_("Use 1 to 255 printable ASCII characters, no spaces.")]},
                code="invalid_idempotency_key",
            )
        fingerprint = body_fingerprint(request.data)
        record, claimed = _claim(request, key, fingerprint)
        if not claimed:
            return _replay(record, fingerprint)
        try:
            response = view_method(view, request, *args, **kwargs)
        except BaseException:
            record.delete()
            raise
        if 200 <= response.status_code < 300:
            IdempotencyRecord.objects.filter(pk=record.pk).update(
                response_status=response.status_code, response_body=response.data
            )
        else:
            record.delete()
        return response

    return wrapper
