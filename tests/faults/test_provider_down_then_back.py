"""Fault: the provider is down for a while (503s, then answers that come too late for the
client's timeout), then back. What survives: every confirmation made during the outage reaches
the provider, once for each message, through the outbox's retries and the sweep.

The real twilio backend talks through its SDK to the Twilio fake; time is driven by the clock
fixture so the backoff passes at once.
"""

from __future__ import annotations

from collections import Counter

import pytest

from feedback_app import outbox, services
from feedback_app.conf import app_settings
from feedback_app.models import Message, ProviderCall
from feedback_app.states import CallState
from feedback_app.testing import FakeServer
from feedback_app.testing.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, TwilioFake

# Committed transactions: the outbox hands calls to the queue on commit.
pytestmark = pytest.mark.django_db(transaction=True)

MESSAGES = 10
#: Client timeout of the backend, and a latency well past it.
TIMEOUT = 0.2
SLOW = 0.5


@pytest.fixture
def fake(settings, monkeypatch):
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_EDGE", "TWILIO_REGION"):
        monkeypatch.delenv(name, raising=False)
    fake = TwilioFake()
    with FakeServer(fake) as server:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PROVIDERS": {
                **settings.FEEDBACK_APP["PROVIDERS"],
                "twilio": {
                    "ACCOUNT_SID": ACCOUNT_SID,
                    "AUTH_TOKEN": AUTH_TOKEN,
                    "FROM": "+15005550006",
                    "BASE_URL": server.url,
                    "TIMEOUT": TIMEOUT,
                },
            },
        }
        yield fake


def send_messages() -> list[Message]:
    # One number each: the guard allows a number five codes in ten minutes.
    return [
        services.send(provider="twilio", to=f"+141555501{index:02d}", body="Your code is 123456")
        for index in range(MESSAGES)
    ]


def call_states(messages: list[Message]) -> Counter:
    return Counter(
        ProviderCall.objects.filter(message__in=messages).values_list("state", flat=True)
    )


def sweep_until_delivered(clock, messages: list[Message]) -> int:
    """Let the backoff pass and sweep, as the schedule would, until every call succeeded.
    Returns how many sweeps it took."""
    for sweeps in range(1, 50):
        clock.advance(seconds=app_settings.RETRY["MAX_DELAY"] + 1)
        outbox.sweep()
        if call_states(messages) == Counter({CallState.SUCCEEDED: len(messages)}):
            return sweeps
    pytest.fail(f"calls still not delivered: {call_states(messages)}")


def test_503s_for_a_while_then_back_every_report_arrives_once(fake, clock):
    messages = send_messages()
    # Injected: the next 35 requests (3-4 attempts per report) are answered 503.
    fake.fail_next(35, status=503)
    for message in messages:
        assert services.confirm(message) is True

    # During the outage nothing reached the provider, and nothing was dropped either.
    assert fake.feedback == {}
    assert call_states(messages) == Counter({CallState.PENDING: MESSAGES})
    assert all(call.last_error_code for call in ProviderCall.objects.all())

    sweep_until_delivered(clock, messages)

    # Survived: each outcome arrived exactly once once the provider was back.
    assert fake.feedback == {m.provider_message_id: ["confirmed"] for m in messages}


def test_answers_slower_than_the_timeout_then_back_every_report_arrives(fake, clock):
    messages = send_messages()
    # Injected: the provider takes the request but answers after the client gave up, as a
    # response lost on the way back; the client sees a timeout.
    fake.latency = SLOW
    for message in messages:
        assert services.confirm(message) is True
    assert call_states(messages) == Counter({CallState.PENDING: MESSAGES})
    assert {call.last_error_code for call in ProviderCall.objects.all()} == {"ReadTimeout"}

    fake.latency = 0
    sweep_until_delivered(clock, messages)

    # Survived: every message's outcome is at the provider, and only "confirmed" was posted.
    # A repeat is the same outcome for the same message (Twilio keeps one feedback resource
    # per message, so it counts once); a message is posted at most once per attempt.
    calls = {
        c.message.provider_message_id: c for c in ProviderCall.objects.select_related("message")
    }
    assert set(fake.feedback) == {m.provider_message_id for m in messages}
    for sid, outcomes in fake.feedback.items():
        assert set(outcomes) == {"confirmed"}
        assert len(outcomes) <= calls[sid].attempts
