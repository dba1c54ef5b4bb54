"""Set-based SQL for expiring overdue messages: one batch moves many rows in a few statements.

The ORM has no INSERT ... SELECT, and a per-row loop would make the sweep as slow as its largest
backlog, so this file speaks SQL. PostgreSQL does it in one statement (a data-modifying CTE that
locks the rows it expires); elsewhere (SQLite) the statements run under the write lock the first
INSERT takes, so no other writer can change the batch in between.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db import connection
from django.utils import timezone

from .conf import app_settings
from .models import Message, MessageEvent, ProviderCall
from .providers.base import reporting_providers
from .signals import feedback_changed
from .states import CallState, EventKind, Feedback, Operation, Source

M = Message._meta.db_table
E = MessageEvent._meta.db_table
C = ProviderCall._meta.db_table

_EVENT_COLUMNS = "message_id, kind, from_value, to_value, source, actor, created_at, detail"
_CALL_COLUMNS = (
    "message_id, provider, operation, payload, state, attempts, next_attempt_at, locked_until,"
    " last_error, last_error_code, idempotency_key, created_at, completed_at"
)
_FAILED_PAYLOAD = '{"outcome": "failed"}'

#: (how many expired, report call ids, expired message ids or [] when nobody listens)
ExpiredBatch = tuple[int, list[int], list[uuid.UUID]]


def expire_batch(now: datetime) -> ExpiredBatch:
    """Expire up to EXPIRE_BATCH overdue messages. Must run inside a transaction.

    Returns (how many expired, ids of the report calls written, ids of the expired messages when
    someone listens to ``feedback_changed``, else an empty list).
    """
    batch = int(app_settings.EXPIRE_BATCH)
    providers = reporting_providers("failed")
    db_now = connection.ops.adapt_datetimefield_value(now)
    # updated_at is this batch's own time, not the run's ``now``: a batch committed minutes
    # into a long run must still be newer than the rollups' watermark, or no refresh sees it.
    db_stamp = connection.ops.adapt_datetimefield_value(timezone.now())
    params = {**_params(db_now, batch), "stamp": db_stamp}
    listening = feedback_changed.has_listeners()
    if connection.vendor == "postgresql":
        return _expire_postgresql({**params, "providers": providers}, listening)
    return _expire_generic(now, params, providers, listening)


def _expire_postgresql(params: dict[str, object], listening: bool) -> ExpiredBatch:
    # The statement returns what it wrote: no second look at the tables for the ids.
    message_ids = "ARRAY(SELECT id FROM expired)" if listening else "NULL"
    sql = f"""
        WITH due AS (
            SELECT id FROM {M}
            WHERE feedback = %(pending)s AND feedback_deadline <= %(now)s
            ORDER BY feedback_deadline
            LIMIT %(batch)s
            FOR UPDATE SKIP LOCKED
        ), expired AS (
            UPDATE {M} AS m SET feedback = %(expired)s, updated_at = %(stamp)s
            FROM due WHERE m.id = due.id
            RETURNING m.id, m.provider, m.feedback_requested
        ), events AS (
            INSERT INTO {E} ({_EVENT_COLUMNS})
            SELECT id, %(kind)s, %(pending)s, %(expired)s, %(source)s, '', %(now)s, '{{}}'::jsonb
            FROM expired
        ), calls AS (
            INSERT INTO {C} ({_CALL_COLUMNS})
            SELECT id, provider, %(operation)s, %(payload)s::jsonb, %(call_pending)s, 0, %(now)s,
                   NULL, '', '', gen_random_uuid(), %(now)s, NULL
            FROM expired
            WHERE feedback_requested AND provider = ANY(%(providers)s)
            RETURNING id
        )
        SELECT (SELECT count(*) FROM expired), ARRAY(SELECT id FROM calls ORDER BY id),
               {message_ids}
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        count, call_ids, expired_ids = cursor.fetchone()
    return count, call_ids, expired_ids or []


def _expire_generic(
    now: datetime, params: dict[str, object], providers: list[str], listening: bool
) -> ExpiredBatch:
    # Earlier batches of the same run share ``now``; this batch's rows are the ones above these.
    last_call = _last_pk(ProviderCall)
    last_event = _last_pk(MessageEvent)
    count = _expire_generic_statements(params, providers)
    if not count:
        return 0, [], []
    # Rows written by this batch carry its exact timestamp and ids above the last ones before it.
    call_ids = list(
        ProviderCall.objects.filter(
            pk__gt=last_call,
            created_at=now,
            state=CallState.PENDING,
            operation=Operation.REPORT_FEEDBACK,
        ).values_list("pk", flat=True)
    )
    message_ids: list[uuid.UUID] = []
    if listening:
        message_ids = list(
            MessageEvent.objects.filter(
                pk__gt=last_event,
                created_at=now,
                kind=EventKind.FEEDBACK,
                to_value=Feedback.EXPIRED,
                source=Source.SWEEP,
            ).values_list("message_id", flat=True)
        )
    return count, call_ids, message_ids


def _last_pk(model: type[MessageEvent] | type[ProviderCall]) -> int:
    return model.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def _expire_generic_statements(params: dict[str, object], providers: list[str]) -> int:
    # The providers one by one, not as a list: SQLite binds no lists, and Django's debug cursor
    # (DEBUG=True) quotes every value of the dict when it logs the query.
    due = f"""
        SELECT id FROM {M}
        WHERE feedback = %(pending)s AND feedback_deadline <= %(now)s
        ORDER BY feedback_deadline, id
        LIMIT %(batch)s
    """
    provider_params = {f"p{i}": key for i, key in enumerate(providers)}
    provider_list = ", ".join(f"%({name})s" for name in provider_params) or "NULL"
    with connection.cursor() as cursor:
        # The first write takes the database write lock; the batch cannot change under us.
        cursor.execute(
            f"""
            INSERT INTO {E} ({_EVENT_COLUMNS})
            SELECT id, %(kind)s, %(pending)s, %(expired)s, %(source)s, '', %(now)s, '{{}}'
            FROM {M} WHERE id IN ({due})
            """,
            params,
        )
        count = cursor.rowcount
        if not count:
            return 0
        cursor.execute(
            f"""
            INSERT INTO {C} ({_CALL_COLUMNS})
            SELECT id, provider, %(operation)s, %(payload)s, %(call_pending)s, 0, %(now)s,
                   NULL, '', '', lower(hex(randomblob(16))), %(now)s, NULL
            FROM {M}
            WHERE id IN ({due}) AND feedback_requested AND provider IN ({provider_list})
            """,
            {**params, **provider_params},
        )
        cursor.execute(
            f"UPDATE {M} SET feedback = %(expired)s, updated_at = %(stamp)s WHERE id IN ({due})",
            params,
        )
        return count


def _params(db_now: object, batch: int) -> dict[str, object]:
    return {
        "now": db_now,
        "batch": batch,
        "pending": Feedback.PENDING.value,
        "expired": Feedback.EXPIRED.value,
        "kind": EventKind.FEEDBACK.value,
        "source": Source.SWEEP.value,
        "operation": Operation.REPORT_FEEDBACK.value,
        "payload": _FAILED_PAYLOAD,
        "call_pending": CallState.PENDING.value,
    }
