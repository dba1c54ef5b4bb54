"""The raw SQL floor of a confirmation: the statements ``services.confirm`` cannot do without.

A conditional UPDATE (the state guard), the event INSERT and the outbox INSERT, for one
transaction the caller opens. Shared by the psycopg baseline (bench/confirm_path.py) and the
plain Django view (bench/urls.py), so both baselines run the very same SQL.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from feedback_app.models import Message, MessageEvent, ProviderCall

# Table names come from the models' meta; every value is a parameter.
UPDATE = f"""
    UPDATE {Message._meta.db_table}
    SET feedback = 'confirmed', confirmed_at = %(now)s,
        confirmed_late = feedback_deadline < %(now)s, updated_at = %(now)s
    WHERE id = %(id)s AND feedback IN ('pending', 'expired', 'failed')
"""  # noqa: S608
INSERT_EVENT = f"""
    INSERT INTO {MessageEvent._meta.db_table}
        (message_id, kind, from_value, to_value, source, actor, created_at, detail)
    VALUES (%(id)s, 'feedback', 'pending', 'confirmed', 'api', '', %(now)s, '{{}}')
"""  # noqa: S608
INSERT_CALL = f"""
    INSERT INTO {ProviderCall._meta.db_table}
        (message_id, provider, operation, payload, state, attempts, next_attempt_at,
         last_error, last_error_code, idempotency_key, created_at)
    VALUES (%(id)s, 'locmem', 'report_feedback', '{{"outcome": "confirmed"}}', 'pending', 0,
            %(now)s, '', '', gen_random_uuid(), %(now)s)
"""  # noqa: S608


def confirm_floor(cursor: Any, message_id: Any, now: datetime) -> bool:
    """Run the three statements on ``cursor`` (psycopg or Django), inside the caller's
    transaction. True when the message was confirmed by this call."""
    params = {"id": message_id, "now": now}
    cursor.execute(UPDATE, params)
    if cursor.rowcount != 1:
        return False
    cursor.execute(INSERT_EVENT, params)
    cursor.execute(INSERT_CALL, params)
    return True
