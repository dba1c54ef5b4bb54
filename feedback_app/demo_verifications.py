"""The demo history's verifications: most seeded text messages are attempts of their own, and
some are resends of an earlier attempt to the same user, so the dashboard has per-verification
numbers to show.

It works on each batch of rows ``demo._Generator`` drew, before they are inserted, with its own
random stream: the messages themselves (their number, times, providers, outcomes) stay the same
for a seed. A resend takes the recipient (and sender) of the message it resends; when it is
confirmed, the earlier message's open state becomes ``superseded`` as ``services.confirm``
would have made it, with the same event and report.
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from typing import Any

from .states import CallState, Channel, Delivery, EventKind, Feedback, Operation
from .verifications import key_hash

Row = dict[str, Any]

#: Share of the text messages sent as part of a verification.
VERIFIED_SHARE = 0.7
#: Chance that an attempt not converted (yet) is resent by the next like message (same channel
#: and purpose; the provider may differ, as when a host fails over): most users who get no code
#: ask again.
RESEND_SHARE = 0.9
#: A resend comes at most this long (seconds) after the message it resends.
MAX_GAP = 3600.0

#: Providers whose backend reports ``failed`` for a superseded message not delivered
#: (``Provider.superseded_outcome``), as ``demo.REPORTS`` records what each takes.
FAILED_WHEN_NOT_DELIVERED = frozenset({"aws_sms", "vonage"})
#: Providers whose backend reports ``failed`` for every superseded message (an expired one has
#: had its ``failed`` already).
FAILED_ALWAYS = frozenset({"alibaba"})
#: Providers that take a ``superseded`` outcome of its own (Plivo's ``CONVERTED_WITH_OTHERS``).
SUPERSEDED_REPORTED = frozenset({"plivo"})


class Verifier:
    """Adds verifications to batches of demo rows."""

    def __init__(self, rng_seed: int, salt: int) -> None:
        self.rng = random.Random(f"{rng_seed}:verifications:{salt}")

    def apply(self, messages: list[Row], events: list[Row], calls: list[Row]) -> list[Row]:
        """Link the batch's messages to verifications (changing rows in place); the new
        verification rows, to insert before the messages."""
        rng = self.rng
        by_message: dict[uuid.UUID, list[Row]] = {}
        for event in events:
            by_message.setdefault(event["message_id"], []).append(event)
        verifications: dict[uuid.UUID, Row] = {}
        # Per channel and purpose: the last attempt that may still be resent.
        open_attempts: dict[tuple[str, str], Row] = {}
        for message in messages:
            # Every row the same keys: the bulk insert reads the columns from the first one.
            message["verification_id"], message["resend"] = None, False
            if message["channel"] == Channel.CHAT or rng.random() >= VERIFIED_SHARE:
                continue
            kind = (message["channel"], message["purpose"])
            first = open_attempts.pop(kind, None)
            gap = (message["sent_at"] - first["sent_at"]).total_seconds() if first else None
            if first is not None and gap <= MAX_GAP and rng.random() < RESEND_SHARE:
                verification = verifications[first["verification_id"]]
                self._resend(first, message, verification, by_message, events, calls)
            else:
                # A fresh id, not from the seeded stream: seeding again adds new attempts.
                verification = _verification(message, uuid.uuid4())
                verifications[verification["id"]] = verification
                message["verification_id"], message["resend"] = verification["id"], False
            if message["feedback"] == Feedback.CONFIRMED:
                verification["converted_at"] = (
                    verification["converted_at"] or (message["confirmed_at"])
                )
                verification["converting_message_id"] = (
                    verification["converting_message_id"] or message["id"]
                )
            else:
                open_attempts[kind] = message
        return list(verifications.values())

    def _resend(
        self,
        first: Row,
        message: Row,
        verification: Row,
        by_message: dict[uuid.UUID, list[Row]],
        events: list[Row],
        calls: list[Row],
    ) -> None:
        """Make ``message`` a resend of ``first``, the attempt's latest message so far (each
        resend follows the one before it, so only that one may still be open)."""
        for field in ("recipient_hash", "recipient_masked", "country", "sender"):
            message[field] = first[field]
        message["verification_id"], message["resend"] = verification["id"], True
        verification["resends"] += 1
        if message["feedback"] != Feedback.CONFIRMED or verification["converted_at"] is not None:
            return
        # The resend converted: the message it resent, if still open, is superseded then.
        confirm = next(e for e in by_message[message["id"]] if e["to_value"] == Feedback.CONFIRMED)
        _supersede(first, message, confirm, by_message, events, calls, self.rng)


def _verification(message: Row, verification_id: uuid.UUID) -> Row:
    return dict(
        id=verification_id,
        key_hash=key_hash(f"demo:{verification_id}"),
        purpose=message["purpose"],
        recipient_hash=message["recipient_hash"],
        country=message["country"],
        resends=0,
        created_at=message["sent_at"],
        converted_at=None,
        converting_message_id=None,
    )


def _supersede(
    earlier: Row,
    converting: Row,
    confirm: Row,
    by_message: dict[uuid.UUID, list[Row]],
    events: list[Row],
    calls: list[Row],
    rng: random.Random,
) -> None:
    """``earlier`` superseded by ``confirm``, the confirmation of ``converting``, if still open
    then (pending or expired)."""
    at: datetime = confirm["created_at"]
    history = by_message.setdefault(earlier["id"], [])
    feedback_events = [e for e in history if e["kind"] == EventKind.FEEDBACK]
    state = Feedback.PENDING
    for event in feedback_events:
        if event["created_at"] <= at:
            state = event["to_value"]
    if state not in (Feedback.PENDING, Feedback.EXPIRED):
        return
    # What happened after the confirmation did not happen: the message stayed superseded.
    for event in [e for e in feedback_events if e["created_at"] > at]:
        history.remove(event)
        events.remove(event)
    superseded = dict(
        message_id=earlier["id"],
        kind=EventKind.FEEDBACK,
        from_value=state,
        to_value=Feedback.SUPERSEDED,
        source=confirm["source"],
        actor=confirm["actor"],
        created_at=at,
        detail={"by": str(converting["id"])},
    )
    history.append(superseded)
    events.append(superseded)
    earlier["feedback"] = Feedback.SUPERSEDED
    earlier["confirmed_at"], earlier["confirmed_late"] = None, False
    earlier["updated_at"] = max(earlier["updated_at"], at)
    for call in [c for c in calls if c["message_id"] == earlier["id"] and c["created_at"] > at]:
        calls.remove(call)
    provider = earlier["provider"]
    outcome = None
    if provider in SUPERSEDED_REPORTED:
        outcome = "superseded"
    elif state == Feedback.PENDING and (
        provider in FAILED_ALWAYS
        or (
            provider in FAILED_WHEN_NOT_DELIVERED
            and earlier["delivery_status"] != Delivery.DELIVERED
        )
    ):
        outcome = "failed"
    if outcome is not None:
        calls.append(
            dict(
                message_id=earlier["id"],
                provider=provider,
                operation=Operation.REPORT_FEEDBACK,
                payload={"outcome": outcome},
                state=CallState.SUCCEEDED,
                attempts=1,
                next_attempt_at=at,
                created_at=at,
                completed_at=at,
                idempotency_key=uuid.UUID(int=rng.getrandbits(128), version=4),
            )
        )
