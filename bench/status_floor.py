"""The raw SQL floor of a delivery status callback: the statements ``services.record_delivery``
cannot do without, for the plain Django views of bench/urls.py that bench/webhooks.py measures
the Twilio and SNS webhooks against.

Read the message by its provider id, the conditional UPDATE (the message moves only up, and only
from the status just read), the event INSERT; in one transaction the caller opens.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from feedback_app.models import Message, MessageEvent

#: Delivery status -> rank, as the app ranks them (an update applies only above the current one).
RANK = {
    "queued": 10,
    "sent": 20,
    "unknown": 30,
    "undelivered": 40,
    "failed": 40,
    "rejected": 40,
    "delivered": 50,
}

# Table names come from the models' meta; every value is a parameter.
SELECT = f"""
    SELECT id, delivery_status FROM {Message._meta.db_table}
    WHERE provider = %s AND provider_message_id = %s
"""  # noqa: S608
UPDATE = f"""
    UPDATE {Message._meta.db_table}
    SET delivery_status = %(status)s, provider_status = %(provider_status)s,
        updated_at = %(now)s,
        delivered_at = CASE WHEN %(status)s = 'delivered' THEN %(at)s ELSE delivered_at END
    WHERE id = %(id)s AND delivery_status = %(current)s
"""  # noqa: S608
INSERT_EVENT = f"""
    INSERT INTO {MessageEvent._meta.db_table}
        (message_id, kind, from_value, to_value, source, actor, created_at, detail)
    VALUES (%(id)s, 'delivery', %(current)s, %(status)s, 'webhook', '', %(at)s, %(detail)s)
"""  # noqa: S608


def status_floor(
    cursor: Any,
    provider: str,
    provider_message_id: str,
    status: str,
    provider_status: str,
    detail: dict[str, Any],
    now: datetime,
) -> bool:
    """Run the statements on ``cursor``, inside the caller's transaction. True when the status
    was applied; False for an unknown message or a status that does not rank higher."""
    cursor.execute(SELECT, [provider, provider_message_id])
    row = cursor.fetchone()
    if row is None or RANK[row[1]] >= RANK[status]:
        return False
    params = {
        "id": row[0],
        "current": row[1],
        "status": status,
        "provider_status": provider_status,
        "now": now,
        "at": now,
        "detail": json.dumps({"provider_status": provider_status, **detail}),
    }
    cursor.execute(UPDATE, params)
    if cursor.rowcount != 1:
        return False
    cursor.execute(INSERT_EVENT, params)
    return True
