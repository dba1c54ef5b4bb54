"""In-memory provider for tests and the demo: nothing leaves the process.

Like Django's locmem e-mail backend, it keeps what it was asked to send in ``outbox`` (in memory
only, never in the database) so tests can assert on it.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from typing import TYPE_CHECKING, Any

from ..states import Delivery
from .base import PermanentError, Provider, ProviderError, RetryableError, SendResult

if TYPE_CHECKING:
    from ..models import Message

#: Messages "sent" in this process, newest last: dicts with to, body, sender, channel, message_id.
outbox: deque[dict[str, Any]] = deque(maxlen=1000)
#: Feedback reports received: dicts with provider_message_id, outcome, idempotency_key.
reports: list[dict[str, Any]] = []

_failures: deque[ProviderError] = deque()
_lock = threading.Lock()


def fail_next(count: int = 1, error: ProviderError | None = None) -> None:
    """Make the next ``count`` calls raise ``error`` (a 503-like RetryableError by default)."""
    with _lock:
        for _ in range(count):
            _failures.append(error or RetryableError("service unavailable", code=503))


def reset() -> None:
    with _lock:
        outbox.clear()
        reports.clear()
        _failures.clear()


def _maybe_fail() -> None:
    with _lock:
        error = _failures.popleft() if _failures else None
    if error is not None:
        raise error


class LocmemProvider(Provider):
    reports = frozenset({"confirmed", "failed"})

    def superseded_outcome(self, message: Message) -> str | None:
        # As aws_sms (the other provider taking "failed"), so tests and the demo exercise both
        # outcomes: failed unless delivered.
        return None if message.delivery_status == Delivery.DELIVERED else "failed"

    def send(
        self,
        *,
        to: str,
        body: str,
        sender: str | None,
        channel: str,
        message_id: str,
        **options: Any,
    ) -> SendResult:
        _maybe_fail()
        outbox.append(
            {"to": to, "body": body, "sender": sender, "channel": channel, "message_id": message_id}
        )
        status = self.config.get("DELIVERY_STATUS", Delivery.SENT)
        return SendResult(
            provider_message_id=f"LM{uuid.uuid4().hex}",
            delivery_status=status,
            provider_status=status,
            sender=sender or self.config.get("SENDER", "LOCMEM"),
        )

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        _maybe_fail()
        if outcome not in self.reports:
            raise PermanentError(f"unknown outcome {outcome!r}", code="invalid_outcome")
        with _lock:
            # Honours the idempotency key the way a real provider would.
            if any(r["idempotency_key"] == idempotency_key for r in reports):
                return
            reports.append(
                {
                    "provider_message_id": provider_message_id,
                    "outcome": outcome,
                    "idempotency_key": idempotency_key,
                }
            )
