"""The demo seed (``manage.py feedback_demo`` and ``feedback_app.demo``): realistic history,
written in bulk, never a clear number, and a command that refuses bad arguments."""

import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db.models import F

from feedback_app import demo
from feedback_app.conf import feedback_window
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.states import CallState, Channel, Delivery, EventKind, Feedback, Source

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def run(*args: str, **options) -> str:
    out = StringIO()
    call_command("feedback_demo", *args, no_progress=True, stdout=out, stderr=out, **options)
    return out.getvalue()


def row_counts() -> tuple[int, int, int]:
    return Message.objects.count(), MessageEvent.objects.count(), ProviderCall.objects.count()


@pytest.fixture
def seeded() -> int:
    """A month of history, with a fixed "now" so every draw is reproducible."""
    return demo.seed(days=30, messages=4000, rng_seed=7, now=NOW)


def test_seed_creates_the_messages_across_providers_countries_and_purposes():
    output = run(messages=3000, days=30)
    assert "Seeded 3,000 messages" in output
    assert Message.objects.count() == 3000
    providers = Counter(Message.objects.values_list("provider", flat=True))
    assert set(providers) == set(demo.PROVIDERS)
    # The three first carry most of the traffic, the other SMS providers 6 % each.
    assert min(providers[key] for key in ("twilio", "aws_sms", "chime")) > 200
    assert all(providers[key] > 100 for key in demo.SMS_PROFILES)
    countries = set(Message.objects.exclude(country="").values_list("country", flat=True))
    assert len(countries) >= 8
    purposes = set(Message.objects.values_list("purpose", flat=True))
    assert purposes == {"otp", "login", "signup", "password_reset"}


def test_provider_ids_senders_and_channels_look_like_the_real_ones(seeded):
    uuid4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    patterns = {
        "twilio": re.compile(r"^SM[0-9a-f]{32}$"),
        "aws_sms": uuid4,
        "chime": re.compile(r"^[0-9a-f]{32}$"),
        "plivo": uuid4,
        "sinch": re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$"),
        "alibaba": re.compile(r"^\d{18}$"),
        "telesign": re.compile(r"^[0-9A-F]{32}$"),
        "vonage": re.compile(r"^[0-9A-F]{16}$"),
        "infobip": uuid4,  # our own public id, sent as the messageId
    }
    rows = Message.objects.values_list("provider", "provider_message_id", "channel", "country")
    for provider, provider_message_id, channel, country in rows:
        assert patterns[provider].match(provider_message_id), provider_message_id
        if provider == "chime":
            assert (channel, country) == (Channel.CHAT, "")
        else:
            assert channel in {Channel.SMS, Channel.WHATSAPP} and country
    assert Message.objects.filter(provider="twilio", channel=Channel.WHATSAPP).exists()
    assert not Message.objects.filter(provider="aws_sms", channel=Channel.WHATSAPP).exists()
    senders = defaultdict(set)
    for provider, sender in Message.objects.values_list("provider", "sender").distinct():
        senders[provider].add(sender)
    assert {"89757", "+14155550142"} <= senders["twilio"]
    assert any(s.startswith("MG") and len(s) == 34 for s in senders["twilio"])
    assert len(senders["aws_sms"]) >= 3
    assert all(s.startswith("arn:aws:chime:") for s in senders["chime"])


def test_conversion_per_country_is_between_40_and_95_percent():
    demo.seed(days=30, messages=12000, rng_seed=3, now=NOW)
    totals: Counter = Counter()
    confirmed: Counter = Counter()
    for country, feedback in Message.objects.exclude(country="").values_list("country", "feedback"):
        totals[country] += 1
        confirmed[country] += feedback == Feedback.CONFIRMED
    checked = [country for country, total in totals.items() if total >= 300]
    assert len(checked) >= 8
    rates = {country: confirmed[country] / totals[country] for country in checked}
    assert all(0.40 <= rate <= 0.95 for rate in rates.values()), rates
    # The rates differ by country: the report has something to show.
    assert max(rates.values()) - min(rates.values()) > 0.2


def test_deadline_is_sent_at_plus_the_feedback_window(seeded):
    for provider, purpose, sent_at, deadline in Message.objects.values_list(
        "provider", "purpose", "sent_at", "feedback_deadline"
    ):
        assert deadline - sent_at == timedelta(seconds=feedback_window(provider, purpose))


def test_sent_times_lie_in_the_period_and_follow_a_daily_pattern(seeded):
    sent = list(Message.objects.values_list("sent_at", flat=True))
    assert min(sent) >= NOW - timedelta(days=30)
    assert max(sent) <= NOW
    # US traffic (UTC-6): busier at local noon than at local 3 a.m.
    hours = Counter(
        (at - timedelta(hours=6)).hour
        for at in Message.objects.filter(country="US").values_list("sent_at", flat=True)
    )
    assert hours[12] > 3 * hours[3]


def test_in_time_confirmations_come_5_seconds_to_10_minutes_after_sending(seeded):
    rows = Message.objects.filter(feedback=Feedback.CONFIRMED, confirmed_late=False)
    delays = [
        (confirmed - sent).total_seconds()
        for sent, confirmed in rows.values_list("sent_at", "confirmed_at")
    ]
    assert len(delays) > 1000
    assert all(5 <= delay <= 600 for delay in delays)
    # Skewed short: most users type the code within a minute.
    assert sorted(delays)[len(delays) // 2] < 60
    assert not rows.filter(confirmed_at__gt=F("feedback_deadline")).exists()


def test_late_and_expired_messages_exist_with_their_history(seeded):
    late = Message.objects.filter(feedback=Feedback.CONFIRMED, confirmed_late=True)
    assert late.count() > 20
    for message in late[:50]:
        assert message.confirmed_at > message.feedback_deadline
        history = list(
            message.events.filter(kind=EventKind.FEEDBACK).values_list("from_value", "to_value")
        )
        assert history == [
            (Feedback.PENDING, Feedback.EXPIRED),
            (Feedback.EXPIRED, Feedback.CONFIRMED),
        ]
    expired = Message.objects.filter(feedback=Feedback.EXPIRED)
    assert expired.count() > 200
    assert not expired.filter(feedback_deadline__gt=NOW).exists()
    assert not expired.exclude(confirmed_at=None).exists()
    assert Message.objects.filter(feedback=Feedback.FAILED).exists()


def test_the_last_hour_can_still_be_pending():
    demo.seed(days=1, messages=3000, rng_seed=5, now=NOW)
    pending = Message.objects.filter(feedback=Feedback.PENDING)
    assert pending.exists()
    # Only messages whose window has not closed (or closed less than a sweep ago) are open.
    assert not pending.filter(feedback_deadline__lt=NOW - timedelta(seconds=60)).exists()
    assert not pending.filter(sent_at__lt=NOW - timedelta(hours=1, minutes=1)).exists()


def test_message_state_matches_its_event_history(seeded):
    events = defaultdict(list)
    for event in MessageEvent.objects.order_by("created_at", "id"):
        events[event.message_id].append(event)
    for message in Message.objects.all():
        delivery = [e for e in events[message.pk] if e.kind == EventKind.DELIVERY]
        feedback = [e for e in events[message.pk] if e.kind == EventKind.FEEDBACK]
        assert delivery[0].from_value == "" and delivery[0].created_at == message.sent_at
        assert delivery[-1].to_value == message.delivery_status
        for before, after in zip(delivery, delivery[1:], strict=False):
            assert after.from_value == before.to_value
        if message.feedback == Feedback.PENDING:
            assert feedback == []
        else:
            assert feedback[-1].to_value == message.feedback
            assert feedback[0].from_value == Feedback.PENDING
        if message.feedback == Feedback.CONFIRMED:
            assert feedback[-1].created_at == message.confirmed_at
        assert all(e.created_at <= NOW for e in events[message.pk])


def test_reports_are_recorded_as_each_provider_takes_them(seeded):
    calls = Counter(
        (provider, payload["outcome"])
        for provider, payload in ProviderCall.objects.values_list("provider", "payload")
    )
    assert set(calls) == {
        (provider, outcome) for provider, outcomes in demo.REPORTS.items() for outcome in outcomes
    }
    assert {("twilio", "confirmed"), ("aws_sms", "confirmed"), ("aws_sms", "failed")} <= set(calls)
    assert set(ProviderCall.objects.values_list("state", flat=True)) == {CallState.SUCCEEDED}
    twilio_confirmed = Message.objects.filter(provider="twilio", feedback=Feedback.CONFIRMED)
    assert calls[("twilio", "confirmed")] == twilio_confirmed.count()
    # AWS gets FAILED for every expiry (its own timer recommendation) and every host failure,
    # and for a pending message superseded by a resend unless it was delivered.
    aws_failed = MessageEvent.objects.filter(
        message__provider="aws_sms",
        kind=EventKind.FEEDBACK,
        to_value__in=[Feedback.EXPIRED, Feedback.FAILED],
    )
    aws_superseded = MessageEvent.objects.filter(
        message__provider="aws_sms",
        kind=EventKind.FEEDBACK,
        from_value=Feedback.PENDING,
        to_value=Feedback.SUPERSEDED,
    ).exclude(message__delivery_status=Delivery.DELIVERED)
    assert calls[("aws_sms", "failed")] == aws_failed.count() + aws_superseded.count()
    for call in ProviderCall.objects.all()[:200]:
        assert call.created_at <= call.completed_at <= NOW
    sweep_expiries = MessageEvent.objects.filter(source=Source.SWEEP, to_value=Feedback.EXPIRED)
    assert sweep_expiries.count() == MessageEvent.objects.filter(to_value=Feedback.EXPIRED).count()


def test_no_clear_phone_number_is_stored_anywhere(seeded):
    pool = demo.recipient_pool(4000, 7)
    numbers = {recipient.phone for recipient in pool}
    digits = {number.lstrip("+") for number in numbers}
    members = {recipient.member_arn for recipient in pool}
    dump = "\n".join(
        str(row)
        for model in (Message, MessageEvent, ProviderCall)
        for row in model.objects.values_list()
    )
    assert not numbers & set(re.findall(r"\+\d{7,15}", dump))
    assert not digits & set(re.findall(r"(?<!\d)\d{8,15}(?!\d)", dump))
    assert not members & set(re.findall(r"arn:aws:chime:[^'\"\s]*/user/[0-9a-f-]{36}", dump))
    # What is stored instead: the hash and the masked form of those numbers.
    hashes = {recipient.phone_hash for recipient in pool}
    assert (
        set(Message.objects.exclude(channel=Channel.CHAT).values_list("recipient_hash", flat=True))
        <= hashes
    )
    assert Message.objects.filter(recipient_masked__regex=r"^\+\d{1,3}\*+\d{4}$").exists()


def test_if_empty_does_nothing_the_second_time():
    run("--if-empty", messages=500)
    counts = row_counts()
    output = run("--if-empty", messages=500)
    assert "reusing the existing data" in output
    assert row_counts() == counts


def test_seeding_again_without_if_empty_adds_rows():
    run(messages=300)
    run(messages=300)
    assert Message.objects.count() == 600


def test_superuser_is_created_once_and_can_log_in(client):
    output = run("--superuser", "--if-empty", messages=50)
    assert "'demo'" in output and "password 'demo'" in output
    user = get_user_model().objects.get(username="demo")
    assert user.is_superuser and user.is_staff
    assert client.login(username="demo", password="demo")
    output = run("--superuser", "--if-empty", messages=50)
    assert "password 'demo'" in output and "reusing" in output
    assert get_user_model().objects.filter(username="demo").count() == 1


@pytest.mark.parametrize(
    "args",
    [
        ["--days", "-1"],
        ["--days", "0"],
        ["--days", "100000"],
        ["--messages", "0"],
        ["--messages", "-10"],
        ["--days", "abc"],
        ["--messages", "1.5"],
    ],
)
def test_bad_arguments_raise_command_error_and_write_nothing(args):
    with pytest.raises(CommandError) as excinfo:
        run(*args, "--superuser")
    assert "days" in str(excinfo.value) or "messages" in str(excinfo.value)
    assert row_counts() == (0, 0, 0)
    assert not get_user_model().objects.exists()


def test_a_seed_that_is_not_a_number_is_refused_before_anything_is_written():
    with pytest.raises(CommandError, match="--seed must be a whole number, not 'x'"):
        run("--seed", "x", "--superuser")
    assert row_counts() == (0, 0, 0)
    assert not get_user_model().objects.exists()


def test_the_same_seed_gives_the_same_counts_and_another_seed_other_data():
    def summary() -> Counter:
        return Counter(
            Message.objects.values_list(
                "provider", "country", "purpose", "feedback", "delivery_status", "confirmed_late"
            )
        )

    run(messages=1500, seed=11)
    first, first_rows, first_ids = (
        summary(),
        row_counts(),
        set(Message.objects.values_list("provider_message_id", flat=True)),
    )
    Message.objects.all().delete()
    run(messages=1500, seed=11)
    assert summary() == first
    assert row_counts() == first_rows
    assert set(Message.objects.values_list("provider_message_id", flat=True)) == first_ids
    Message.objects.all().delete()
    run(messages=1500, seed=12)
    assert summary() != first


def test_progress_is_reported_per_batch():
    calls = []
    total = demo.BATCH_SIZE + 10 + demo.PUMPING.sent
    created = demo.seed(days=2, messages=total, progress=lambda *a: calls.append(a))
    assert created == total
    # The ordinary history in batches, then the pumping episode's messages in one more.
    ordinary = created - demo.PUMPING.sent
    assert calls == [(demo.BATCH_SIZE, created), (ordinary, created), (created, created)]


def test_help_explains_the_command():
    from feedback_app.management.commands.feedback_demo import Command

    parser = Command().create_parser("manage.py", "feedback_demo")
    text = parser.format_help()
    for option in ("--days", "--messages", "--seed", "--if-empty", "--superuser", "--no-progress"):
        assert option in text
    assert "twilio" in text and "alibaba" in text and "without" in text


def test_the_history_has_verifications_with_resends_and_superseded_messages(seeded):
    from feedback_app.models import Verification
    from feedback_app.reports import conversion_report

    totals = conversion_report().totals
    assert totals.verifications > 0.5 * totals.attempted
    assert 0.05 < totals.resent_share < 0.4
    assert totals.superseded > 0
    assert totals.verification_conversion_rate > totals.conversion_rate
    # A resend goes to the recipient of its attempt, for the same purpose.
    for verification in Verification.objects.filter(resends__gt=0)[:50]:
        messages = verification.messages.all()
        assert {m.recipient_hash for m in messages} == {verification.recipient_hash}
        assert {m.purpose for m in messages} == {verification.purpose}
        assert sum(m.resend for m in messages) == verification.resends
    converted = Verification.objects.filter(converted_at__isnull=False)
    assert all(
        v.converting_message.feedback == Feedback.CONFIRMED
        for v in converted.select_related("converting_message")[:50]
    )
