"""The SMS-pumping guard: limits, country lists, blocks, automatic blocks of pumped prefixes."""

import random
import uuid
from datetime import timedelta

import phonenumbers
import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from feedback_app import blocks, guard, services, signals
from feedback_app.errors import SendBlocked
from feedback_app.models import BlockedSend, GuardBlock, Message
from feedback_app.providers import locmem
from feedback_app.recipients import MIN_CANDIDATES, candidates, mask, parse_recipient

from .factories import NUMBERS

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("window_start")]


def guard_settings(**guard):
    return override_settings(FEEDBACK_APP={**settings.FEEDBACK_APP, "GUARD": guard})


def send(to=NUMBERS["US"], **kwargs):
    return services.send(provider="locmem", to=to, body="Your code is 123456", **kwargs)


def every_example_number():
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        for kind in vars(phonenumbers.PhoneNumberType).values():
            if not isinstance(kind, int):
                continue
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                yield region, kind, number
    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS:
        number = phonenumbers.example_number_for_non_geo_entity(code)
        if number is not None:
            yield "001", code, number


def test_the_prefix_and_the_mask_leave_at_least_10000_numbers_for_every_example_number():
    checked = 0
    for region, kind, number in every_example_number():
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if not phonenumbers.is_valid_number(number):
            continue  # an example number phonenumbers itself no longer finds valid
        recipient = parse_recipient(e164, "sms")
        assert e164.startswith(recipient.prefix), (region, kind, e164)
        assert recipient.prefix.startswith(f"+{number.country_code}")
        # Short numbers (5 to 7 national digits) leave fewer with the mask alone: their prefix
        # is the calling code, which the mask shows already, so it adds nothing.
        mask_alone = candidates(f"+{number.country_code}", mask(e164))
        assert candidates(recipient.prefix, mask(e164)) >= min(MIN_CANDIDATES, mask_alone), (
            region,
            kind,
            e164,
        )
        checked += 1
    assert checked > 1000


def test_the_prefix_is_the_destination_code_when_the_number_is_long_enough():
    # Germany: 15x mobile ranges, 11 national digits, so the whole operator code fits.
    assert parse_recipient("+4915123456789", "sms").prefix == "+49151"
    # A ten-digit US number keeps 4 digits in the mask: the area code is cut to two.
    assert parse_recipient(NUMBERS["US"], "sms").prefix == "+120"
    assert parse_recipient("arn:aws:chime:x/user/1", "chat").prefix == ""


def test_a_send_stores_the_prefix():
    assert send(to=NUMBERS["DE"]).recipient_prefix == "+49151"


@guard_settings(RECIPIENT_LIMIT=[3, 600])
def test_the_recipient_limit_refuses_with_a_code_and_calls_no_provider():
    for _ in range(3):
        send()
    with pytest.raises(SendBlocked) as refused:
        send()
    assert refused.value.code == "recipient_rate"
    assert 1 <= refused.value.retry_after <= 600
    assert refused.value.is_rate_limit
    assert len(locmem.outbox) == 3
    assert Message.objects.count() == 3
    record = BlockedSend.objects.get()
    assert (record.code, record.provider, record.country, record.prefix) == (
        "recipient_rate",
        "locmem",
        "US",
        "+120",
    )
    # Another number is counted on its own.
    send(to=NUMBERS["GB"])


@guard_settings(RECIPIENT_LIMIT=[1, 60])
def test_a_limit_lifts_when_its_window_ends(clock):
    send()
    with pytest.raises(SendBlocked):
        send()
    clock.advance(seconds=61)
    send()


@guard_settings(RECIPIENT_LIMIT=None)
def test_a_limit_set_to_none_is_off():
    for _ in range(20):
        send()


@guard_settings(ENABLED=False, RECIPIENT_LIMIT=[1, 60], BLOCKED_COUNTRIES={"*": ["US"]})
def test_the_whole_guard_can_be_turned_off():
    send()
    send()


@guard_settings(RECIPIENT_LIMIT=None, VERIFICATION_LIMIT=[2, 3600])
def test_the_verification_limit_counts_sends_per_key():
    send(verification="login-1")
    send(verification="login-1")
    with pytest.raises(SendBlocked) as refused:
        send(verification="login-1")
    assert refused.value.code == "verification_rate"
    send(verification="login-2")
    send()  # without a key it is not counted


@guard_settings(RECIPIENT_LIMIT=None, CLIENT_LIMIT=[2, 3600])
def test_the_client_limit_counts_sends_per_client():
    send(client="ip:203.0.113.9", to=NUMBERS["US"])
    send(client="ip:203.0.113.9", to=NUMBERS["GB"])
    with pytest.raises(SendBlocked) as refused:
        send(client="ip:203.0.113.9", to=NUMBERS["DE"])
    assert refused.value.code == "client_rate"
    assert BlockedSend.objects.get().client_kind == "ip"
    send(client="user:7", to=NUMBERS["DE"])


@pytest.mark.parametrize("bad", ["", "x" * 300, "a\x00b", 12])
def test_a_bad_verification_or_client_key_sends_nothing(bad):
    from django.core.exceptions import ValidationError

    for field in ("verification", "client"):
        with pytest.raises(ValidationError) as error:
            send(**{field: bad})
        assert field in error.value.message_dict
    assert not locmem.outbox
    assert not BlockedSend.objects.exists()


@guard_settings(RECIPIENT_LIMIT=None, PREFIX_LIMIT=[2, 3600], COUNTRY_LIMIT=[4, 3600])
def test_the_prefix_and_country_limits():
    send(to="+4915123456789")
    send(to="+4915123456780")
    with pytest.raises(SendBlocked) as refused:
        send(to="+4915123456781")
    assert refused.value.code == "prefix_rate"
    # Another prefix, same country: its fourth send, the refused one counted too.
    send(to="+4916012345678")
    with pytest.raises(SendBlocked) as refused:
        send(to="+4917012345678")
    assert refused.value.code == "country_rate"


@guard_settings(
    ALLOWED_COUNTRIES={"*": ["US", "GB"], "signup": ["US"]},
    BLOCKED_COUNTRIES={"login": ["GB"]},
)
def test_country_lists_per_purpose():
    send(to=NUMBERS["GB"])
    with pytest.raises(SendBlocked) as refused:
        send(to=NUMBERS["DE"])
    assert refused.value.code == "country_not_allowed"
    assert not refused.value.is_rate_limit
    with pytest.raises(SendBlocked) as refused:
        send(to=NUMBERS["GB"], purpose="signup")
    assert refused.value.code == "country_not_allowed"
    with pytest.raises(SendBlocked) as refused:
        send(to=NUMBERS["GB"], purpose="login")
    assert refused.value.code == "country_blocked"
    # A non-geographic number (Inmarsat, +870) has no country: outside every allow list.
    with pytest.raises(SendBlocked) as refused:
        send(to="+870301234567")
    assert refused.value.code == "country_not_allowed"


def test_a_blocked_prefix_refuses_until_unblocked(django_capture_on_commit_callbacks):
    received = []
    signals.guard_blocked.connect(lambda **kw: received.append(kw["block"]), weak=False)
    signals.guard_unblocked.connect(lambda **kw: received.append(kw["actor"]), weak=False)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            block, created = blocks.block("prefix", "+4915", reason="test", actor="ops")
        assert created
        assert blocks.block("prefix", "+4915", reason="again")[0] == block
        with pytest.raises(SendBlocked) as refused:
            send(to="+4915123456789")
        assert refused.value.code == "prefix_blocked"
        assert BlockedSend.objects.get().block == block
        send(to="+4917012345678")  # not under the prefix
        with django_capture_on_commit_callbacks(execute=True):
            assert blocks.unblock(block, actor="ops")
        assert not blocks.unblock(block, actor="ops")
        send(to="+4915123456789")
        assert received == [block, "ops"]
    finally:
        signals.guard_blocked.receivers.clear()
        signals.guard_unblocked.receivers.clear()


def test_a_block_expires(clock):
    blocks.block("country", "de", reason="test", until=clock.now + timedelta(hours=1))
    with pytest.raises(SendBlocked) as refused:
        send(to=NUMBERS["DE"])
    assert refused.value.code == "country_blocked"
    clock.advance(hours=1, seconds=1)
    send(to=NUMBERS["DE"])


@pytest.mark.parametrize(
    ("kind", "value", "field"),
    [("prefix", "4915", "value"), ("prefix", "+", "value"), ("country", "XX", "value")],
)
def test_a_bad_block_is_refused_and_writes_nothing(kind, value, field):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as error:
        blocks.block(kind, value, reason="x")
    assert field in error.value.message_dict
    assert not GuardBlock.objects.exists()


PUMPED_PREFIX = "+23480"


def pumped_number(rng):
    return f"+23480{rng.randrange(3, 10)}{rng.randrange(10**7):07d}"


@guard_settings(SETTLE=0, MIN_ATTEMPTS=100, WINDOW=3600)
def test_a_pumping_run_is_blocked_within_the_window_and_normal_traffic_never(clock):
    rng = random.Random(11)
    normal = [f"+49151{rng.randrange(10**7, 10**8)}" for _ in range(60)]
    normal += [f"+447400{rng.randrange(10**6):06d}" for _ in range(60)]
    refused_normal = pumped_sent = pumped_refused = 0
    for step in range(2400):
        clock.advance(seconds=1)
        if step % 5 == 0:
            try:
                message = send(to=rng.choice(normal))
            except SendBlocked:
                refused_normal += 1
            else:
                if rng.random() < 0.8:
                    services.confirm(message)
            continue
        try:
            send(to=pumped_number(rng))
        except SendBlocked as refused:
            assert refused.code == "prefix_blocked"
            pumped_refused += 1
        else:
            pumped_sent += 1
    block = GuardBlock.objects.get()
    assert (block.kind, block.value, block.automatic) == ("prefix", PUMPED_PREFIX, True)
    assert block.detail["confirmed"] == 0
    assert block.detail["attempted"] >= 99
    # Blocked at the floor: the hundredth send looked, well within the hour.
    assert pumped_sent == 100
    assert pumped_refused > 1800
    assert refused_normal == 0
    assert BlockedSend.objects.filter(code="prefix_blocked", prefix=PUMPED_PREFIX).count() == (
        pumped_refused
    )


def track(to, confirmed):
    message = services.track(provider="locmem", provider_message_id=f"LM-{uuid.uuid4().hex}", to=to)
    if confirmed:
        services.confirm(message)


@guard_settings(SETTLE=60, MIN_ATTEMPTS=50, WINDOW=3600, MAX_CONVERSION=0.05, DROP=0.8)
def test_the_periodic_job_blocks_a_prefix_far_below_its_baseline(clock):
    # Tracked (sent by the host itself, so not through the guard's send-time check): a month
    # ago traffic to +49151 converting at 90 %, then an hour at 10 %.
    start = clock.now
    for index in range(120):
        clock.now = start - timedelta(days=10, minutes=index)
        track(f"+4915123456{index:03d}", confirmed=bool(index % 10))
    clock.now = start
    for index in range(60):
        clock.advance(seconds=30)
        track(f"+4915198765{index:03d}", confirmed=index % 10 == 0)
    clock.advance(minutes=2)
    assert blocks.block_pumped_prefixes() != []
    block = GuardBlock.objects.get()
    assert block.value == "+49151"
    assert "30 days" in block.reason
    assert block.detail["baseline_rate"] == pytest.approx(0.9)
    assert block.detail["confirmed"] == 6
    # Run again: the prefix is blocked already, nothing new.
    assert blocks.block_pumped_prefixes() == []


@guard_settings(AUTO_BLOCK=False, SETTLE=0, MIN_ATTEMPTS=10)
def test_automatic_blocks_can_be_turned_off():
    rng = random.Random(3)
    for _ in range(30):
        send(to=pumped_number(rng))
    assert blocks.block_pumped_prefixes() == []
    assert not GuardBlock.objects.exists()


def test_the_codes_are_stable():
    assert guard.CODES == (
        "recipient_rate",
        "verification_rate",
        "client_rate",
        "prefix_rate",
        "country_rate",
        "prefix_blocked",
        "country_blocked",
        "country_not_allowed",
    )


def test_the_active_blocks_are_read_again_after_a_change_elsewhere(django_assert_num_queries):
    send()  # reads the (no) blocks once
    with django_assert_num_queries(0):
        blocks.active_blocks()
    GuardBlock.objects.create(kind="prefix", value="+120", reason="elsewhere", since=timezone.now())
    blocks.forget()  # what BLOCKS_REFRESH seconds do in another process
    with pytest.raises(SendBlocked):
        send()
