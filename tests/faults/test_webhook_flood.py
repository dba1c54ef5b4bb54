"""Fault: a flood of 10,000 signed Twilio status callbacks over 500 messages, each status sent
several times and all of them shuffled (duplicates, and late statuses before early ones).
What survives: every message ends at its highest-ranked status, with one delivery event per
status it really moved through and none for a repeat.

The rate is printed (docs/benchmarks.md records it), not asserted: bench/ measures speed.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from urllib.parse import urlencode

import pytest
from twilio.request_validator import RequestValidator

from feedback_app import services
from feedback_app.models import Message, MessageEvent
from feedback_app.states import DELIVERY_RANK, Delivery, EventKind

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "flood-auth-token"
URL = "http://testserver/feedback/webhooks/twilio/"
MESSAGES = 500
CALLBACKS = 10_000

#: Twilio's status sequences, mapped to the normalized status each one ends at.
SEQUENCES: list[tuple[list[str], str]] = [
    (["queued", "sent", "delivered"], Delivery.DELIVERED),
    (["queued", "sent", "undelivered"], Delivery.UNDELIVERED),
    (["queued", "failed"], Delivery.FAILED),
    (["queued", "sent"], Delivery.SENT),
]


@pytest.fixture(autouse=True)
def twilio_settings(settings, monkeypatch):
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {
            **settings.FEEDBACK_APP["PROVIDERS"],
            "twilio": {"ACCOUNT_SID": ACCOUNT_SID, "AUTH_TOKEN": AUTH_TOKEN},
        },
    }


def callbacks(rng: random.Random) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The shuffled flood, and the status each message must end at."""
    expected: dict[str, str] = {}
    unique: list[dict[str, str]] = []
    for index in range(MESSAGES):
        sid = f"SM{index:032x}"
        statuses, final = SEQUENCES[index % len(SEQUENCES)]
        expected[sid] = final
        unique += [
            {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "MessageStatus": status}
            for status in statuses
        ]
    # Duplicates to make up the flood: every callback at least once, the rest at random.
    flood = unique + [rng.choice(unique) for _ in range(CALLBACKS - len(unique))]
    rng.shuffle(flood)
    return flood, expected


def test_ten_thousand_duplicate_and_out_of_order_callbacks_end_in_the_right_state(client):
    rng = random.Random(20261123)
    flood, expected = callbacks(rng)
    for sid in expected:
        services.track(provider="twilio", provider_message_id=sid, to="+14155550123")
    validator = RequestValidator(AUTH_TOKEN)

    # Injected: the flood, each callback correctly signed, in random order with repeats.
    started = time.perf_counter()
    for params in flood:
        response = client.post(
            "/feedback/webhooks/twilio/",
            urlencode(params),
            content_type="application/x-www-form-urlencoded",
            headers={"X-Twilio-Signature": validator.compute_signature(URL, params)},
        )
        assert response.status_code == 200, response.content
    elapsed = time.perf_counter() - started
    print(f"\n{CALLBACKS} callbacks in {elapsed:.1f} s: {CALLBACKS / elapsed:,.0f} callbacks/s")

    # Survived: the final status of each message is the highest it was sent.
    final = dict(Message.objects.values_list("provider_message_id", "delivery_status"))
    assert final == expected
    # One event per real transition: strictly rising ranks, no repeat, ending at the final one.
    events: dict[str, list[str]] = {sid: [] for sid in expected}
    for sid, status in (
        MessageEvent.objects.filter(kind=EventKind.DELIVERY)
        .order_by("pk")
        .values_list("message__provider_message_id", "to_value")
    ):
        events[sid].append(status)
    for sid, statuses in events.items():
        ranks = [DELIVERY_RANK[status] for status in statuses]
        assert ranks == sorted(set(ranks)), (sid, statuses)
        assert statuses[-1] == expected[sid]
    # Repeats and late arrivals were absorbed: far fewer events than callbacks.
    assert sum(len(s) for s in events.values()) <= MESSAGES * 3
    assert Counter(final.values())[Delivery.DELIVERED] == MESSAGES // len(SEQUENCES)
