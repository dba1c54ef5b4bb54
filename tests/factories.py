"""Builders for test data, going through the public API like a host project would."""

from __future__ import annotations

import itertools
from typing import Any

from feedback_app import services
from feedback_app.models import Message

_ids = itertools.count(1)

#: Valid mobile numbers of a few countries (phonenumbers' examples).
NUMBERS = {
    "US": "+12015550123",
    "GB": "+447400123456",
    "DE": "+4915123456789",
    "BR": "+5511961234567",
    "IN": "+918123456789",
}


def make_message(**overrides: Any) -> Message:
    fields: dict[str, Any] = {
        "provider": "locmem",
        "provider_message_id": f"LM{next(_ids):032x}",
        "to": NUMBERS["US"],
    }
    fields.update(overrides)
    return services.track(**fields)
