"""The outbox: writing provider calls, handing them to the queue, and delivering them.

The ``ProviderCall`` row, not the queue, is the record (``queue.enqueue`` hands calls over).
A worker claims a call with a conditional UPDATE (so two workers never deliver it at once),
calls the provider outside any transaction, and records the outcome only if its claim still
holds. The sweep re-enqueues calls whose task was lost.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.utils import timezone

from .conf import app_settings
from .models import Message, ProviderCall
from .providers.base import PermanentError, Provider, RetryableError, get_provider
from .queue import enqueue
from .states import CallState, Operation

logger = logging.getLogger(__name__)

OPEN_STATES = (CallState.PENDING, CallState.IN_FLIGHT)

#: Seconds a call waits when an older call of its message is still being delivered; the sweep
#: then takes it (after SWEEP_GRACE when it was never attempted).
WAIT_FOR_OLDER = 5


def add_report(
    message: Message, outcome: str, now: datetime, *, supersede: bool = True
) -> ProviderCall | None:
    """Write the call that reports ``outcome`` for ``message``, if its provider takes it.

    Must run inside the transaction that made the transition. Older open reports for the same
    message are superseded: only the latest outcome matters to the provider. ``supersede=False``
    skips that UPDATE when the caller knows the message has none.
    """
    call = report_call(message, outcome, now)
    if call is None:
        return None
    if supersede:
        open_reports(message.pk).update(state=CallState.SUPERSEDED, completed_at=now)
    call.save(force_insert=True)
    enqueue_on_commit(call)
    return call


def report_call(message: Message, outcome: str, now: datetime) -> ProviderCall | None:
    """The unsaved call that reports ``outcome`` for ``message``; None when its provider takes
    no such report (or it asked for none)."""
    if not message.feedback_requested:
        return None
    try:
        provider = get_provider(message.provider)
    except KeyError:
        return None
    if outcome not in provider.reports:
        return None
    return ProviderCall(
        message=message,
        provider=message.provider,
        operation=Operation.REPORT_FEEDBACK,
        payload={"outcome": outcome},
        next_attempt_at=now,
        created_at=now,
    )


def open_reports(message_pk: object) -> QuerySet[ProviderCall]:
    """The message's reports still waiting: a newer outcome supersedes them."""
    return ProviderCall.objects.filter(
        message_id=message_pk, operation=Operation.REPORT_FEEDBACK, state=CallState.PENDING
    )


def enqueue_on_commit(call: ProviderCall) -> None:
    transaction.on_commit(lambda: enqueue([call.pk]))


def report_superseded(message: Message, now: datetime) -> ProviderCall | None:
    """Write what the provider advises for ``message``, just superseded (another message of its
    verification was confirmed): ``Provider.superseded_outcome`` decides.

    No outcome: nothing is reported, and a report still waiting (the expiry's ``failed``) is
    superseded. An outcome already reported (or waiting) is not written twice.
    """
    if not message.feedback_requested:
        return None
    try:
        provider = get_provider(message.provider)
    except KeyError:
        return None
    outcome = provider.superseded_outcome(message)
    reports = ProviderCall.objects.filter(message=message, operation=Operation.REPORT_FEEDBACK)
    if outcome is None:
        reports.filter(state=CallState.PENDING).update(state=CallState.SUPERSEDED, completed_at=now)
        return None
    if reports.filter(payload__outcome=outcome).exclude(state=CallState.SUPERSEDED).exists():
        return None
    return add_report(message, outcome, now)


def backoff(attempts: int) -> timedelta:
    """Full-jitter exponential backoff: uniform(0, min(max_delay, base * 2**(attempts - 1)))."""
    retry = app_settings.RETRY
    ceiling = min(float(retry["MAX_DELAY"]), float(retry["BASE_DELAY"]) * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=random.uniform(0, ceiling))


def claim(call_id: int, now: datetime | None = None) -> ProviderCall | None:
    """Take the call for this worker, or None when it is not due or another worker holds it.

    Calls of one message are delivered one at a time, oldest first: while an older call of the
    same message is in flight under a live claim, this one is not taken (the provider would
    get the newer outcome first, and AWS keeps the last one written) but put back a little,
    for the sweep. Both are single conditional UPDATEs, so the check cannot go stale.
    """
    now = now or timezone.now()
    due = Q(state=CallState.PENDING, next_attempt_at__lte=now) | Q(
        state=CallState.IN_FLIGHT, locked_until__lt=now
    )
    older_in_flight = Exists(
        ProviderCall.objects.filter(
            message_id=OuterRef("message_id"),
            pk__lt=OuterRef("pk"),
            state=CallState.IN_FLIGHT,
            locked_until__gte=now,
        )
    )
    claimed = (
        ProviderCall.objects.filter(due, pk=call_id)
        .filter(~older_in_flight)
        .update(
            state=CallState.IN_FLIGHT,
            attempts=F("attempts") + 1,
            locked_until=now + timedelta(seconds=app_settings.CLAIM_TIMEOUT),
        )
    )
    if not claimed:
        ProviderCall.objects.filter(due, older_in_flight, pk=call_id).update(
            next_attempt_at=now + timedelta(seconds=WAIT_FOR_OLDER)
        )
        return None
    return ProviderCall.objects.select_related("message").get(pk=call_id)


def _finish(call: ProviderCall, **fields: object) -> bool:
    """Record the outcome only if our claim (state and attempt number) still holds."""
    return bool(
        ProviderCall.objects.filter(
            pk=call.pk, state=CallState.IN_FLIGHT, attempts=call.attempts
        ).update(locked_until=None, **fields)
    )


def deliver(call_id: int) -> str | None:
    """Deliver one call. Returns the state it ended in, or None if it was not ours to deliver."""
    now = timezone.now()
    call = claim(call_id, now)
    if call is None:
        return None
    newer = ProviderCall.objects.filter(
        message_id=call.message_id, operation=call.operation, pk__gt=call.pk
    ).exclude(state=CallState.SUPERSEDED)
    if newer.exists():
        _finish(call, state=CallState.SUPERSEDED, completed_at=now)
        return CallState.SUPERSEDED
    if call.attempts > app_settings.RETRY["MAX_ATTEMPTS"]:
        # Claimed again after workers kept dying while holding it (a lost claim counts).
        return _give_up(call, "no worker finished the call", "worker_lost")
    try:
        provider = get_provider(call.provider)
    except KeyError:
        return _refused(call, f"provider {call.provider!r} is not configured", "not_configured")
    try:
        _call_provider(provider, call)
    except RetryableError as exc:
        return _after_retryable(call, exc)
    except PermanentError as exc:
        return _refused(call, exc.message, exc.code)
    except Exception as exc:
        # A bug or an unexpected SDK error: retried under the same policy as a 5xx, so it
        # ends in gave_up instead of holding the call in flight forever.
        logger.exception("feedback_app: call %s raised an unexpected error", call.pk)
        return _after_retryable(call, RetryableError(repr(exc)[:500], code="unexpected"))
    if not _finish(call, state=CallState.SUCCEEDED, completed_at=timezone.now(), last_error=""):
        return None  # our claim ran out and another worker took over; it records the outcome
    return CallState.SUCCEEDED


def _call_provider(provider: Provider, call: ProviderCall) -> None:
    if call.operation != Operation.REPORT_FEEDBACK:
        raise PermanentError(f"unknown operation {call.operation!r}", code="unknown_operation")
    outcome = call.payload.get("outcome") if isinstance(call.payload, dict) else None
    if not outcome:
        raise PermanentError("the call has no outcome", code="bad_payload")
    provider.report_feedback(
        provider_message_id=call.message.provider_message_id,
        outcome=outcome,
        idempotency_key=str(call.idempotency_key),
    )


def _refused(call: ProviderCall, error: str, code: str) -> str | None:
    logger.warning(
        "feedback_app: call %s refused by %s: [%s] %s", call.pk, call.provider, code, error
    )
    if not _finish(
        call,
        state=CallState.FAILED,
        last_error=error,
        last_error_code=code,
        completed_at=timezone.now(),
    ):
        return None
    return CallState.FAILED


def _exhausted(call: ProviderCall, now: datetime) -> bool:
    retry = app_settings.RETRY
    too_old = now - call.created_at > timedelta(seconds=retry["MAX_AGE"])
    return too_old or call.attempts >= retry["MAX_ATTEMPTS"]


def _give_up(call: ProviderCall, error: str, code: str) -> str | None:
    logger.error("feedback_app: gave up on call %s after %s attempts", call.pk, call.attempts)
    finished = _finish(
        call,
        state=CallState.GAVE_UP,
        last_error=error,
        last_error_code=code,
        completed_at=timezone.now(),
    )
    return CallState.GAVE_UP if finished else None


def _after_retryable(call: ProviderCall, exc: RetryableError) -> str | None:
    now = timezone.now()
    if _exhausted(call, now):
        return _give_up(call, exc.message, exc.code)
    finished = _finish(
        call,
        state=CallState.PENDING,
        next_attempt_at=now + backoff(call.attempts),
        last_error=exc.message,
        last_error_code=exc.code,
    )
    return CallState.PENDING if finished else None


def due_calls(now: datetime | None = None) -> list[int]:
    """Ids of calls whose task may have been lost: due and waiting past the grace, or stuck."""
    now = now or timezone.now()
    grace = now - timedelta(seconds=app_settings.SWEEP_GRACE)
    due = Q(state=CallState.PENDING, next_attempt_at__lte=grace) | Q(
        state=CallState.PENDING, attempts__gt=0, next_attempt_at__lte=now
    )
    stuck = Q(state=CallState.IN_FLIGHT, locked_until__lt=now)
    return list(
        ProviderCall.objects.filter(due | stuck)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[: app_settings.SWEEP_BATCH]
    )


def sweep(now: datetime | None = None) -> int:
    """Re-enqueue due and stuck calls; returns how many were handed to the queue."""
    return enqueue(due_calls(now))


def retry_calls(
    calls: Iterable[ProviderCall] | None = None, *, queryset: QuerySet[ProviderCall] | None = None
) -> int:
    """Put failed or given-up calls back in the queue now (admin action, command).

    Returns how many were put back. A call that left those states meanwhile (another admin's
    retry, a worker) is left alone: the state is checked by the UPDATE itself, and only the rows
    it changed are enqueued.
    """
    qs = (
        queryset
        if queryset is not None
        else ProviderCall.objects.filter(pk__in=[c.pk for c in calls or []])
    )
    ids = list(qs.filter(state__in=RETRYABLE_STATES).values_list("pk", flat=True))
    now = timezone.now()
    changed: list[int] = []
    with transaction.atomic():
        for start in range(0, len(ids), _RETRY_CHUNK):
            changed += _reset_calls(ids[start : start + _RETRY_CHUNK], now)
        transaction.on_commit(lambda: enqueue(changed))
    return len(changed)


#: States retry_calls() takes calls out of.
RETRYABLE_STATES = (CallState.FAILED, CallState.GAVE_UP)
#: Ids per statement (well below SQLite's limit on bound parameters).
_RETRY_CHUNK = 500


def _reset_calls(ids: list[int], now: datetime) -> list[int]:
    """Set the calls among ``ids`` still failed or given up back to pending; their ids."""
    if not ids:
        return []
    # A fresh created_at restarts the max-age clock for the new round of attempts.
    values = {
        "state": CallState.PENDING,
        "next_attempt_at": now,
        "created_at": now,
        "attempts": 0,
        "completed_at": None,
    }
    if not _can_return_from_update():
        # No UPDATE ... RETURNING: one conditional UPDATE per call, each reporting its count.
        return [
            pk
            for pk in ids
            if ProviderCall.objects.filter(pk=pk, state__in=RETRYABLE_STATES).update(**values)
        ]
    table = connection.ops.quote_name(ProviderCall._meta.db_table)
    sql = (
        f"UPDATE {table} SET state = %s, next_attempt_at = %s, created_at = %s, attempts = 0,"  # noqa: S608
        f" completed_at = NULL WHERE id IN ({', '.join(['%s'] * len(ids))})"
        f" AND state IN (%s, %s) RETURNING id"
    )
    db_now = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        states = [state.value for state in RETRYABLE_STATES]
        cursor.execute(sql, [CallState.PENDING.value, db_now, db_now, *ids, *states])
        return [row[0] for row in cursor.fetchall()]


def _can_return_from_update() -> bool:
    if connection.vendor == "postgresql":
        return True
    if connection.vendor == "sqlite":
        return connection.Database.sqlite_version_info >= (3, 35)
    return False
