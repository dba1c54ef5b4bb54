"""``Idempotency-Key`` on the POSTs that create or send: a retry gets the first response.

The first request with a key claims it (a row, unique per user, key and path) before it runs;
a retry with the same body gets the stored response without running again, a retry with
another body gets 422, and a retry while the first still runs gets 409. Only successful
responses are kept: after an error nothing was written, so the key is released and a retry
runs the request again. Keys are remembered for ``FEEDBACK_APP["IDEMPOTENCY_TTL"]`` seconds.
A claim whose request never finished (its process died) is abandoned after
``FEEDBACK_APP["IDEMPOTENCY_CLAIM_TIMEOUT"]`` seconds, and the next retry takes it over.

The row holds an HMAC of the request body, never the body: a send carries the code. Nor does
it hold a confirmation token (a credential): a replay makes it again from the message id.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext_lazy as _
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from ..conf import app_settings
from ..models import IdempotencyRecord
from ..tokens import confirmation_token
from .exceptions import IdempotencyKeyInUse, IdempotencyKeyReused

HEADER = "Idempotency-Key"
#: Set on a replayed response.
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_KEY_LENGTH = 255
#: Printable ASCII without spaces: what clients put in it (UUIDs, ULIDs, hashes).
KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)

View = Callable[..., Response]

#: Response keys not stored with the record, and how a replay makes them again.
_DERIVED: dict[str, Callable[[dict[str, Any]], Any]] = {
    "confirmation_token": lambda data: confirmation_token(data["id"]),
}


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


def _claim(
    request: Request, key: str, fingerprint: str, now: datetime
) -> tuple[IdempotencyRecord, bool]:
    """The record for this key: (new record, True) if this request claimed it."""
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


def _take_over(record: IdempotencyRecord, now: datetime) -> bool:
    """Claim an unfinished record whose request has been running too long to be alive.

    Conditional on the claim this request saw (its ``created_at``), so of several retries at
    once exactly one takes it over; the others get 409 like any retry of a running request.
    """
    timeout = timedelta(seconds=int(app_settings.IDEMPOTENCY_CLAIM_TIMEOUT))
    if record.created_at >= now - timeout:
        return False
    taken = IdempotencyRecord.objects.filter(
        pk=record.pk, response_status__isnull=True, created_at=record.created_at
    ).update(created_at=now)
    if taken:
        record.created_at = now
    return taken == 1


def _replay(record: IdempotencyRecord) -> Response:
    data = record.response_body
    if isinstance(data, dict) and "id" in data:
        data = {**data, **{name: derive(data) for name, derive in _DERIVED.items()}}
    return Response(data, status=record.response_status, headers={REPLAYED_HEADER: "true"})


def _stored(data: Any) -> Any:
    if isinstance(data, dict):
        return {name: value for name, value in data.items() if name not in _DERIVED}
    return data


def _keyable(user: Any) -> bool:
    """A user the records can point to: a saved row of the user model.

    Stateless authentication (simplejwt's TokenUser and the like) gives a user object that is
    not one; its keys cannot be told apart from another's safely.
    """
    return isinstance(user, get_user_model()) and user.pk is not None


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
        if not _keyable(request.user):
            # Refused rather than ignored: a client relying on the key would send twice.
            message = _("This authentication gives no stored user to keep the key for.")
            raise ValidationError({HEADER: [ErrorDetail(str(message), code="unsupported")]})
        fingerprint = body_fingerprint(request.data)
        now = timezone.now()
        record, claimed = _claim(request, key, fingerprint, now)
        if not claimed:
            if record.request_hash != fingerprint:
                raise IdempotencyKeyReused()
            if record.response_status is not None:
                return _replay(record)
            if not _take_over(record, now):
                raise IdempotencyKeyInUse()
        # This request's claim: untouched if another retry has taken the key over meanwhile.
        mine = IdempotencyRecord.objects.filter(pk=record.pk, created_at=record.created_at)
        try:
            response = view_method(view, request, *args, **kwargs)
        except BaseException:
            mine.delete()
            raise
        if 200 <= response.status_code < 300:
            mine.update(response_status=response.status_code, response_body=_stored(response.data))
        else:
            mine.delete()
        return response

    return wrapper
