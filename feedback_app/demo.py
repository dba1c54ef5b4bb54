"""Seed data for ``make demo``: realistic, recorded-only history for every built-in provider.

The history includes an SMS-pumping episode (``PUMPING``): a burst of sends to one prefix that
never converts, the block the guard made, and the sends it refused afterwards.

Nothing here calls a provider or goes through ``services``: the rows a running deployment would
have written (messages, their delivery and feedback events, the succeeded report calls) are
generated in Python and bulk-inserted, so a million messages take minutes, not hours.
"""

from __future__ import annotations

import bisect
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from itertools import accumulate, chain
from typing import Any

import phonenumbers
from django.db import connections, models, router, transaction
from django.utils import timezone

from . import demo_verifications, rollups
from .conf import app_settings, feedback_window
from .models import BlockedSend, GuardBlock, Message, MessageEvent, ProviderCall, Verification
from .recipients import destination_prefix, mask, recipient_hash
from .states import CallState, Channel, Delivery, EventKind, Feedback, Operation, Source


@dataclass(frozen=True)
class SmsProfile:
    """How one SMS provider's messages look in the history: the raw statuses its API answers and
    its receipts carry, as its backend maps them (``providers/<key>.py``), and its ids."""

    #: Outcomes its backend takes reports for (``Provider.reports``).
    reports: frozenset[str]
    #: The project's own senders (numbers in the fictional 555-01xx range, or sender ids).
    senders: tuple[str, ...]
    #: The provider's message id, made from 128 random bits.
    message_id: Callable[[int], str]
    #: What the send answers ("" when it answers no status), and the receipts' raw statuses.
    queued: str
    #: Handed to the carrier; None when the provider reports no such step.
    sent: str | None
    delivered: str
    undelivered: tuple[str, ...]
    failed: tuple[str, ...]
    rejected: tuple[str, ...]
    #: How the statuses after the send arrive (``Source.WEBHOOK`` or ``Source.POLL``).
    source: str = Source.WEBHOOK
    #: Where a receipt's error code goes in the event's detail, and the codes drawn.
    error_detail_key: str = ""
    error_codes: tuple[str, ...] = ()


def _ulid(bits: int) -> str:
    """A ULID (Sinch's batch ids): 26 Crockford base32 digits of 128 bits."""
    digits = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return "".join(digits[(bits >> shift) & 31] for shift in range(125, -1, -5))


#: The SMS providers whose history follows ``SmsProfile`` (the first three have their own paths).
SMS_PROFILES: dict[str, SmsProfile] = {
    "alibaba": SmsProfile(
        reports=frozenset({"confirmed", "failed"}),
        senders=("AcmeOTP", "AcmeLogin"),
        # Digits: a millisecond time and a counter.
        message_id=lambda bits: f"{1_760_000_000_000 + bits % 10**11}{bits % 10**5:05d}",
        queued="",
        sent=None,  # SmsReport pushes final reports only
        delivered="1",
        undelivered=("2", "6"),
        failed=(),
        rejected=(),
        error_detail_key="error_code",
        error_codes=("UNDELIV", "EXPIRED", "REJECTD"),
    ),
    "infobip": SmsProfile(
        reports=frozenset({"confirmed"}),
        senders=("InfoSMS", "Acme"),
        # Our own public id, sent as the message's messageId and echoed by Infobip.
        message_id=lambda bits: str(uuid.UUID(int=bits, version=4)),
        queued="PENDING_ACCEPTED",
        sent=None,  # Infobip posts final reports only
        delivered="DELIVERED_TO_HANDSET",
        undelivered=(
            "UNDELIVERABLE_NOT_DELIVERED",
            "UNDELIVERABLE_REJECTED_OPERATOR",
            "EXPIRED_EXPIRED",
        ),
        failed=(),
        rejected=("REJECTED_NETWORK", "REJECTED_DESTINATION"),
        error_detail_key="error_name",
        error_codes=("EC_UNKNOWN_SUBSCRIBER", "EC_ABSENT_SUBSCRIBER"),
    ),
    "plivo": SmsProfile(
        reports=frozenset({"confirmed", "failed", "superseded"}),
        senders=("14155550100", "14155550101"),  # Plivo writes numbers without "+"
        message_id=lambda bits: str(uuid.UUID(int=bits, version=4)),
        queued="queued",
        sent="sent",
        delivered="delivered",
        undelivered=("undelivered",),
        failed=("failed",),
        rejected=("rejected",),
        error_detail_key="error_code",
        error_codes=("20", "30", "40", "50"),
    ),
    "sinch": SmsProfile(
        reports=frozenset({"confirmed"}),
        senders=("+12065550100", "OTPService"),
        message_id=_ulid,
        queued="",
        sent="Dispatched",
        delivered="Delivered",
        undelivered=("Failed", "Deleted"),
        failed=("Aborted", "Expired"),
        rejected=("Rejected",),
        error_detail_key="code",
        error_codes=("402", "404", "406", "408", "412"),
    ),
    "telesign": SmsProfile(
        reports=frozenset({"confirmed"}),
        senders=("ACME", "15558675310"),
        # A Verify transaction's reference_id: 32 uppercase hex digits.
        message_id=lambda bits: f"{bits:032X}",
        queued="290",
        sent="203",
        delivered="200",
        # The status code is the reason itself: no separate error code.
        undelivered=("210", "207", "211", "220", "221", "514"),
        failed=("500", "503", "505", "507"),
        rejected=("230", "233", "515", "521"),
    ),
    "vonage": SmsProfile(
        reports=frozenset({"confirmed", "failed"}),
        senders=("AcmeOTP", "+14155550100"),
        # The SMS API's message-id: 16 uppercase hex digits.
        message_id=lambda bits: f"{bits % 16**16:016X}",
        queued="",
        sent="accepted",
        delivered="delivered",
        undelivered=("expired", "failed"),
        failed=(),  # refusals come back from the send, not in receipts
        rejected=("rejected",),
        error_detail_key="error_code",
        error_codes=("1", "2", "3", "4", "5", "6", "7", "99"),
    ),
}

#: The providers the demo history is recorded for (keys as everywhere else).
PROVIDERS: tuple[str, ...] = ("twilio", "aws_sms", "chime", *SMS_PROFILES)

#: Outcomes each provider takes reports for, as their backends declare (``Provider.reports``).
#: Written here because the example project configures only ``locmem``.
REPORTS: dict[str, frozenset[str]] = {
    "twilio": frozenset({"confirmed"}),
    "aws_sms": frozenset({"confirmed", "failed"}),
    "chime": frozenset(),
    **{key: profile.reports for key, profile in SMS_PROFILES.items()},
}

#: Messages per batch: one executemany each for them, their events and their report calls.
BATCH_SIZE = 5000

DEFAULT_DAYS = 30
DEFAULT_MESSAGES = 6000
DEFAULT_SEED = 20261123
MAX_DAYS = 3650
MAX_MESSAGES = 50_000_000

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class Country:
    code: str
    #: Share of the traffic.
    weight: float
    #: Fixed share of its users who use the code (before the purpose's modifier).
    conversion: float
    #: Hours from UTC, so each country's traffic follows its own day.
    utc_offset: float
    calling_code: str
    #: Mobile prefixes after the calling code, and how many random digits follow them.
    prefixes: tuple[str, ...]
    digits: int


COUNTRIES: tuple[Country, ...] = (
    Country("US", 28, 0.88, -6, "1", ("201", "312", "512", "646", "702", "917"), 7),
    Country("IN", 15, 0.63, 5.5, "91", ("70", "81", "97", "98"), 8),
    Country("BR", 10, 0.72, -3, "55", ("119", "219", "319"), 8),
    Country("ID", 9, 0.60, 7, "62", ("812", "813", "857"), 8),
    Country("GB", 8, 0.90, 0, "44", ("7400", "7500", "7911"), 6),
    Country("DE", 7, 0.91, 1, "49", ("151", "160", "170", "176"), 8),
    Country("MX", 7, 0.70, -6, "52", ("33", "55", "81"), 8),
    Country("PH", 6, 0.64, 8, "63", ("917", "918", "927"), 7),
    Country("FR", 5, 0.86, 1, "33", ("6", "7"), 8),
    Country("NG", 5, 0.55, 1, "234", ("703", "803", "806", "813"), 7),
)

#: purpose -> (share of traffic, conversion modifier). Resets convert least: users give up.
PURPOSES: dict[str, tuple[float, float]] = {
    "otp": (0.45, 1.0),
    "login": (0.30, 1.03),
    "signup": (0.15, 0.95),
    "password_reset": (0.10, 0.90),
}

#: Shares of the traffic: the three first providers carry most of it, the others an equal part
#: of the rest.
PROVIDER_SHARES: dict[str, float] = {
    "twilio": 0.45 * (1 - 0.06 * len(SMS_PROFILES)),
    "aws_sms": 0.40 * (1 - 0.06 * len(SMS_PROFILES)),
    "chime": 0.15 * (1 - 0.06 * len(SMS_PROFILES)),
    **dict.fromkeys(SMS_PROFILES, 0.06),
}

#: Relative traffic by local hour of day: quiet nights, a morning and an evening peak.
HOURLY = (
    0.25, 0.15, 0.10, 0.08, 0.08, 0.12, 0.30, 0.60, 0.90, 1.00, 1.00, 0.95,
    0.95, 0.95, 0.90, 0.90, 0.90, 0.95, 1.00, 1.05, 1.05, 0.95, 0.70, 0.45,
)  # fmt: skip
#: Relative traffic by local weekday, Monday first.
WEEKLY = (1.0, 1.02, 1.03, 1.02, 0.98, 0.80, 0.75)

# Senders are the project's own numbers and ids, so they may be stored in clear. The numbers are
# in the fictional 555-01xx range, which no generated recipient uses (no 415/206/888 prefixes).
TWILIO_SENDERS = ("89757", "+14155550142", "MG9f2c4e1a7b3d5f6081a2b3c4d5e6f701")
TWILIO_WHATSAPP_SENDER = "whatsapp:+14155550199"
AWS_US_SENDERS = ("+12065550152", "+18885550123")
AWS_SENDER_IDS = ("ACMEOTP", "ACME")
CHIME_APP = "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
CHIME_SENDERS = (
    f"{CHIME_APP}/bot/otp-bot",
    f"{CHIME_APP}/bot/verify-bot",
    f"{CHIME_APP}/channel/7d4e2b1c-3a5f-4e6d-8c9b-a1b2c3d4e5f6",
)

TWILIO_UNDELIVERED_CODES = ("30003", "30005", "30006", "30008")
TWILIO_FAILED_CODES = ("30007", "30034", "21610")
AWS_UNDELIVERED = ("TEXT_CARRIER_UNREACHABLE", "TEXT_UNREACHABLE", "TEXT_TTL_EXPIRED")
AWS_REJECTED = ("TEXT_BLOCKED", "TEXT_CARRIER_BLOCKED", "TEXT_SPAM")

#: How a message nobody converted ends, per provider: (upper bound of a uniform draw, the
#: delivery status), in order; the last bound is 1.
Outcomes = tuple[tuple[float, str], ...]
TWILIO_NOT_CONVERTED: Outcomes = (
    (0.70, Delivery.DELIVERED),
    (0.78, Delivery.SENT),  # no receipt from the carrier
    (0.92, Delivery.UNDELIVERED),
    (1.0, Delivery.FAILED),
)
AWS_NOT_CONVERTED: Outcomes = (
    (0.70, Delivery.DELIVERED),
    (0.80, Delivery.SENT),
    (0.90, Delivery.UNDELIVERED),
    (0.95, Delivery.REJECTED),
    (1.0, Delivery.FAILED),
)
SMS_NOT_CONVERTED: Outcomes = (
    (0.70, Delivery.DELIVERED),
    (0.78, Delivery.SENT),
    (0.90, Delivery.UNDELIVERED),
    (0.95, Delivery.REJECTED),
    (1.0, Delivery.FAILED),
)

#: AWS returns TEXT_UNKNOWN when no final carrier event arrived within 72 hours.
AWS_UNKNOWN_AFTER = 72 * 3600.0
#: Share of conversions that come after the deadline (after the message expired).
LATE_SHARE = 0.04
#: Share of unconverted, delivered messages the host app fails itself (the user asked again).
HOST_FAIL_SHARE = 0.10


@dataclass(frozen=True)
class Pumping:
    """The demo's SMS-pumping episode: bots asking sign-up codes for numbers of one prefix."""

    country: str = "KG"
    #: Numbers are this and 7 random digits (+996 70x xxx xxx, mobile).
    number_start: str = "+99670"
    #: Messages sent before the guard blocked the prefix (its MIN_ATTEMPTS floor, and those
    #: sent within the SETTLE seconds the check leaves out), and sends refused after.
    sent: int = 104
    refused: int = 420
    #: Hours before now the episode starts; the block (24 hours) is still in force.
    hours_ago: float = 6.0
    #: Only seedings of at least this many messages get the episode (small ones stay plain).
    min_messages: int = 2000


PUMPING = Pumping()


@dataclass(frozen=True)
class DemoRecipient:
    """One synthetic user: a phone number for SMS/WhatsApp and a member ARN for chat."""

    country: str
    phone: str
    phone_hash: str
    phone_masked: str
    member_arn: str
    member_hash: str
    member_masked: str
    phone_prefix: str = ""
    #: A bot's number of the pumping episode, never drawn for ordinary traffic.
    pumped: bool = False


def check_options(days: object, messages: object) -> None:
    """Raise ``ValueError`` with a readable message for arguments seeding cannot use."""
    if not isinstance(days, int) or isinstance(days, bool) or not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be a whole number from 1 to {MAX_DAYS}, not {days!r}.")
    if (
        not isinstance(messages, int)
        or isinstance(messages, bool)
        or not 1 <= messages <= MAX_MESSAGES
    ):
        raise ValueError(
            f"messages must be a whole number from 1 to {MAX_MESSAGES:,}, not {messages!r}."
        )


def recipient_pool(messages: int, rng_seed: int) -> list[DemoRecipient]:
    """The synthetic users a seeding of ``messages`` with ``rng_seed`` sends to.

    Deterministic, so tests can check that none of these numbers is stored in clear. Users get
    several messages each, as real ones do, which also keeps hashing and masking off the hot path.
    """
    rng = random.Random(f"{rng_seed}:recipients")
    size = max(len(COUNTRIES) * 3, min(messages // 4, 250_000))
    total_weight = sum(c.weight for c in COUNTRIES)
    seen: set[str] = set()
    pool: list[DemoRecipient] = []
    prefixes: dict[str, str] = {}

    def prefix_of(phone: str, head: str) -> str:
        # Numbers of one mobile range share their prefix: parse one of each.
        if head not in prefixes:
            prefixes[head] = destination_prefix(phonenumbers.parse(phone))
        return prefixes[head]

    for country in COUNTRIES:
        # At least a few users per country, so every country can be drawn however small the run.
        wanted = max(3, round(size * country.weight / total_weight))
        low, high = 2 * 10 ** (country.digits - 1), 10**country.digits
        while wanted:
            # The first subscriber digit is 2-9: numbering plans rarely start one with 0 or 1.
            head = f"+{country.calling_code}{rng.choice(country.prefixes)}"
            phone = f"{head}{rng.randrange(low, high)}"
            if phone in seen:
                continue
            seen.add(phone)
            wanted -= 1
            member = f"{CHIME_APP}/user/{uuid.UUID(int=rng.getrandbits(128), version=4)}"
            pool.append(
                DemoRecipient(
                    country=country.code,
                    phone=phone,
                    phone_hash=recipient_hash(phone),
                    phone_masked=mask(phone),
                    member_arn=member,
                    member_hash=recipient_hash(member),
                    member_masked=mask(member),
                    phone_prefix=prefix_of(phone, head),
                )
            )
    if messages >= PUMPING.min_messages:
        # Their own stream: the ordinary pool is the same with or without them.
        pumped = random.Random(f"{rng_seed}:pumping")
        for _ in range(PUMPING.sent):
            phone = f"{PUMPING.number_start}{pumped.randrange(10**7):07d}"
            pool.append(
                DemoRecipient(
                    country=PUMPING.country,
                    phone=phone,
                    phone_hash=recipient_hash(phone),
                    phone_masked=mask(phone),
                    member_arn="",
                    member_hash="",
                    member_masked="",
                    phone_prefix=prefix_of(phone, PUMPING.number_start),
                    pumped=True,
                )
            )
    return pool


def seed(
    days: int = DEFAULT_DAYS,
    messages: int = DEFAULT_MESSAGES,
    rng_seed: int = DEFAULT_SEED,
    progress: ProgressCallback | None = None,
    *,
    now: datetime | None = None,
) -> int:
    """Insert ``messages`` messages sent over the last ``days`` days, with their history.

    One transaction: on any error nothing is written. Once the rollups have been refreshed, the
    rollups of the seeded hours are recomputed in it too, so reports count the new rows at
    once. Returns the number of messages inserted.
    ``progress(done, total)`` is called after each batch.
    """
    check_options(days, messages)
    now = now or timezone.now()
    pool = recipient_pool(messages, rng_seed)
    using = router.db_for_write(Message)
    with transaction.atomic(using=using):
        # Ids come from their own stream salted with the rows already there, so seeding twice
        # with one seed adds new rows instead of colliding on the unique provider message ids.
        salt = Message.objects.using(using).count()
        pumped = [recipient for recipient in pool if recipient.pumped]
        generator = _Generator(days, messages - len(pumped), rng_seed, now, pool, salt)
        verifier = demo_verifications.Verifier(rng_seed, salt)
        models_ = (Verification, Message, MessageEvent, ProviderCall)
        tables = [_Table(model, using) for model in models_]
        done = 0
        batches = generator.batches(BATCH_SIZE)
        if pumped:
            batches = chain(batches, [generator.pumping(pumped, days)])
        for messages_, events, calls in batches:
            verifications = verifier.apply(messages_, events, calls)
            # Parents first: the events and calls point at the messages of this batch.
            for table, table_rows in zip(
                tables, (verifications, messages_, events, calls), strict=True
            ):
                table.insert(table_rows)
            done += len(messages_)
            if progress is not None:
                progress(done, messages)
        if pumped:
            _guard_block(generator, pumped, days, using)
        # The rows carry their own history's updated_at, mostly before the rollups' watermark,
        # so a refresh would not see them: recompute the seeded hours with them.
        rollups.recompute([(now - timedelta(days=days), now + timedelta(microseconds=1))])
    return done


Row = dict[str, Any]


class _Table:
    """Bulk INSERT of plain rows into one model's table, values adapted as bulk_create would.

    bulk_create spends most of its time building model instances and compiling statements of
    at most 999 parameters on SQLite; one ``executemany`` per batch is several times faster and
    writes the same values (each field's own database adaptation). Like bulk_create, it sends
    no signals. Fields a row leaves out get their model default, so new fields keep working.
    """

    def __init__(self, model: type[models.Model], using: str) -> None:
        # The wrapper itself, not the thread-local proxy: it is looked up for every value.
        self.connection = db = connections[using]
        ops = db.ops
        fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.db_returning)]
        self.fields = fields
        self.names = [f.attname for f in fields]
        self.adapters: list[Callable[[Any], Any] | None] = []
        for field in fields:
            kind = field.get_internal_type()
            if kind in _PLAIN_TYPES:
                self.adapters.append(None)
            elif kind == "DateTimeField":
                self.adapters.append(ops.adapt_datetimefield_value)
            elif kind == "JSONField":
                self.adapters.append(_cached(partial(field.get_db_prep_save, connection=db)))
            else:
                self.adapters.append(partial(field.get_db_prep_save, connection=db))
        quote = ops.quote_name
        columns = ", ".join(quote(f.column) for f in fields)
        placeholders = ", ".join(["%s"] * len(fields))
        # Table and column names come from the model's meta, quoted; every value is a parameter.
        self.sql = f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES ({placeholders})"  # noqa: S608

    def insert(self, rows: list[Row]) -> None:
        if not rows:
            return
        missing = [
            (index, field)
            for index, (name, field) in enumerate(zip(self.names, self.fields, strict=True))
            if name not in rows[0]
        ]
        params = []
        for row in rows:
            values = [row.get(name) for name in self.names]
            for index, field in missing:
                values[index] = field.get_default()
            params.append(
                tuple(
                    value if adapt is None else adapt(value)
                    for value, adapt in zip(values, self.adapters, strict=True)
                )
            )
        with self.connection.cursor() as cursor:
            cursor.executemany(self.sql, params)


def _cached(adapt: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """Adapt small flat dicts once per distinct value: the details and payloads repeat a lot."""
    cache: dict[tuple, Any] = {}

    def adapted(value: Any) -> Any:
        if not isinstance(value, dict):
            return adapt(value)
        try:
            # The type is part of the key: True == 1, but they are different JSON.
            key = tuple((name, type(item), item) for name, item in value.items())
            result = cache.get(key)
        except TypeError:  # an unhashable value: nothing to cache
            return adapt(value)
        if result is None:
            result = cache[key] = adapt(value)
        return result

    return adapted


#: Field types whose Python values the database drivers take as they are.
_PLAIN_TYPES = frozenset(
    {
        "BooleanField",
        "CharField",
        "SlugField",
        "TextField",
        "IntegerField",
        "BigIntegerField",
        "PositiveIntegerField",
        "SmallIntegerField",
        "PositiveSmallIntegerField",
        "PositiveBigIntegerField",
    }
)


def _cumulative(weights: list[float]) -> list[float]:
    return list(accumulate(weights))


def _pick(draw: float, outcomes: Outcomes) -> str:
    """The outcome whose share holds ``draw`` (uniform in [0, 1))."""
    return next(outcome for bound, outcome in outcomes if draw < bound)


def _lognormal_clipped(
    rng: random.Random, median: float, sigma: float, lo: float, hi: float
) -> float:
    value = rng.lognormvariate(math.log(median), sigma)
    if value < lo or value > hi:
        # Redraw uniformly rather than clip, so no spike sits on the bounds.
        value = rng.uniform(lo, hi)
    return value


class _Generator:
    """Draws the messages and their history; all randomness comes from two seeded streams."""

    def __init__(
        self,
        days: int,
        messages: int,
        rng_seed: int,
        now: datetime,
        pool: list[DemoRecipient],
        salt: int,
    ) -> None:
        self.days = days
        self.messages = messages
        self.rng = random.Random(f"{rng_seed}:history")
        self.ids = random.Random(f"{rng_seed}:ids:{salt}")
        self.now = now.timestamp()
        self.pool_by_country: dict[str, list[DemoRecipient]] = {}
        for recipient in pool:
            if not recipient.pumped:
                self.pool_by_country.setdefault(recipient.country, []).append(recipient)
        self.windows = {
            (provider, purpose): float(feedback_window(provider, purpose))
            for provider in PROVIDERS
            for purpose in PURPOSES
        }
        self.purposes = list(PURPOSES)
        self.purpose_cum = _cumulative([share for share, _ in PURPOSES.values()])
        self.purpose_mod = {name: mod for name, (_, mod) in PURPOSES.items()}
        self.providers = list(PROVIDER_SHARES)
        self.provider_cum = _cumulative(list(PROVIDER_SHARES.values()))
        # A three-hour carrier outage for twilio in Brazil, so the dashboard has a dip to find.
        start = self.now - days * 86400 * 0.4
        self.incident = (start - start % 3600, start - start % 3600 + 3 * 3600)

    # -- sent times ------------------------------------------------------------------------------

    def sent_times(self) -> list[tuple[float, Country]]:
        """Every message's sent time and its user's country, oldest first."""
        rng = self.rng
        hours = self.days * 24
        first = self.now - hours * 3600
        countries = rng.choices(
            COUNTRIES, cum_weights=_cumulative([c.weight for c in COUNTRIES]), k=self.messages
        )
        counts: dict[str, int] = {}
        for country in countries:
            counts[country.code] = counts.get(country.code, 0) + 1
        out: list[tuple[float, Country]] = []
        for country in COUNTRIES:
            count = counts.get(country.code, 0)
            if not count:
                continue
            weights = []
            for index in range(hours):
                local = first + index * 3600 + country.utc_offset * 3600
                hour = int(local // 3600) % 24
                weekday = (int(local // 86400) + 3) % 7  # 1970-01-01 was a Thursday
                trend = 0.85 + 0.3 * index / hours  # the product is growing
                weights.append(HOURLY[hour] * WEEKLY[weekday] * trend)
            cum = _cumulative(weights)
            total = cum[-1]
            random_ = rng.random
            for _ in range(count):
                index = bisect.bisect_right(cum, random_() * total)
                out.append((first + (min(index, hours - 1) + random_()) * 3600, country))
        out.sort(key=lambda item: item[0])
        return out

    # -- batches ---------------------------------------------------------------------------------

    def batches(self, size: int) -> Iterator[tuple[list[Row], list[Row], list[Row]]]:
        """Rows of messages, events and report calls, ``size`` messages at a time."""
        sent = self.sent_times()
        for start in range(0, len(sent), size):
            batch: list[Row] = []
            events: list[Row] = []
            calls: list[Row] = []
            for at, country in sent[start : start + size]:
                self._message(at, country, batch, events, calls)
            yield batch, events, calls

    def _message(
        self,
        sent: float,
        country: Country,
        batch: list[Row],
        events: list[Row],
        calls: list[Row],
    ) -> None:
        rng = self.rng
        random_ = rng.random
        now = self.now
        provider = self.providers[bisect.bisect_right(self.provider_cum, random_())]
        purpose = self.purposes[bisect.bisect_right(self.purpose_cum, random_())]
        user = rng.choice(self.pool_by_country[country.code])
        window = self.windows[(provider, purpose)]
        deadline = sent + window
        rate = min(0.97, country.conversion * self.purpose_mod[purpose])
        incident = (
            provider == "twilio"
            and country.code == "BR"
            and self.incident[0] <= sent < self.incident[1]
        )
        if incident:
            rate *= 0.35
        converted = random_() < rate

        message_id = uuid.UUID(int=self.ids.getrandbits(128), version=4)
        # (time, normalized status, raw provider status, source, extra detail)
        delivery: list[tuple[float, str, str, str, dict]]
        if provider == "twilio":
            channel = Channel.WHATSAPP if random_() < 0.08 else Channel.SMS
            if channel == Channel.WHATSAPP:
                sender = TWILIO_WHATSAPP_SENDER
            else:
                sender = TWILIO_SENDERS[bisect.bisect_right((0.25, 0.5, 1.0), random_())]
            provider_message_id = f"SM{self.ids.getrandbits(128):032x}"
            delivery = self._twilio(sent, sender, converted, incident)
        elif provider == "aws_sms":
            channel = Channel.SMS
            sender = rng.choice(AWS_US_SENDERS if country.code == "US" else AWS_SENDER_IDS)
            provider_message_id = str(uuid.UUID(int=self.ids.getrandbits(128), version=4))
            delivery = self._aws(sent, converted)
        elif provider == "chime":
            channel = Channel.CHAT
            sender = rng.choice(CHIME_SENDERS)
            provider_message_id = f"{self.ids.getrandbits(128):032x}"
            delivery = self._chime(sent, converted)
        else:
            profile = SMS_PROFILES[provider]
            channel = Channel.SMS
            sender = rng.choice(profile.senders)
            provider_message_id = profile.message_id(self.ids.getrandbits(128))
            delivery = self._sms(profile, sent, converted)

        status, raw, delivered_at, last_change = self._delivery_events(
            message_id, sent, delivery, events
        )
        delivery_ok = status in (Delivery.DELIVERED, Delivery.SENT, Delivery.UNKNOWN)

        # Feedback: a list of (time, from, to, source, actor, detail) transitions.
        transitions: list[tuple[float, str, str, str, str, dict]] = []
        confirm_source, actor = self._confirm_source()
        if converted:
            if random_() < LATE_SHARE:
                expired_at = deadline + rng.uniform(0.5, 60.0)  # the sweep runs every minute
                confirmed_at = expired_at + _lognormal_clipped(rng, 180.0, 1.2, 5.0, 6 * 3600.0)
                transitions.append(
                    (expired_at, Feedback.PENDING, Feedback.EXPIRED, Source.SWEEP, "", {})
                )
                transitions.append(
                    (
                        confirmed_at,
                        Feedback.EXPIRED,
                        Feedback.CONFIRMED,
                        confirm_source,
                        actor,
                        {"late": True},
                    )
                )
            else:
                hi = min(600.0, window)
                lo = min(5.0, hi / 2)
                confirmed_at = sent + _lognormal_clipped(rng, 25.0, 0.9, lo, hi)
                transitions.append(
                    (
                        confirmed_at,
                        Feedback.PENDING,
                        Feedback.CONFIRMED,
                        confirm_source,
                        actor,
                        {"late": False},
                    )
                )
        elif delivery_ok and random_() < HOST_FAIL_SHARE:
            failed_at = sent + rng.uniform(min(30.0, window * 0.3), min(300.0, window * 0.9))
            transitions.append(
                (failed_at, Feedback.PENDING, Feedback.FAILED, Source.PYTHON, "", {})
            )
        else:
            expired_at = deadline + rng.uniform(0.5, 60.0)
            transitions.append(
                (expired_at, Feedback.PENDING, Feedback.EXPIRED, Source.SWEEP, "", {})
            )

        feedback, confirmed_at_dt, late = Feedback.PENDING, None, False
        reports = REPORTS[provider]
        for at, from_value, to_value, source, who, detail in transitions:
            if at > now:
                break
            at_dt = _dt(at)
            events.append(
                dict(
                    message_id=message_id,
                    kind=EventKind.FEEDBACK,
                    from_value=from_value,
                    to_value=to_value,
                    source=source,
                    actor=who,
                    created_at=at_dt,
                    detail=detail,
                )
            )
            feedback = to_value
            last_change = max(last_change, at)
            if to_value == Feedback.CONFIRMED:
                confirmed_at_dt, late = at_dt, detail["late"]
            outcome = "confirmed" if to_value == Feedback.CONFIRMED else "failed"
            if outcome in reports:
                calls.append(self._call(message_id, provider, outcome, at, at_dt))

        batch.append(
            dict(
                id=message_id,
                provider=provider,
                provider_message_id=provider_message_id,
                channel=channel,
                purpose=purpose,
                sender=sender,
                recipient_hash=user.member_hash if channel == Channel.CHAT else user.phone_hash,
                recipient_masked=(
                    user.member_masked if channel == Channel.CHAT else user.phone_masked
                ),
                # Chat has no phone number, so no country, as parse_recipient records it.
                country="" if channel == Channel.CHAT else country.code,
                recipient_prefix="" if channel == Channel.CHAT else user.phone_prefix,
                delivery_status=status,
                provider_status=raw[:64],
                feedback=feedback,
                feedback_requested=True,
                confirmed_late=late,
                sent_at=_dt(sent),
                delivered_at=_dt(delivered_at) if delivered_at is not None else None,
                confirmed_at=confirmed_at_dt,
                feedback_deadline=_dt(deadline),
                metadata={"demo": True},
                created_at=_dt(sent),
                updated_at=_dt(last_change),
            )
        )

    def _delivery_events(
        self,
        message_id: uuid.UUID,
        sent: float,
        path: list[tuple[float, str, str, str, dict]],
        events: list[Row],
    ) -> tuple[str, str, float | None, float]:
        """Append the delivery events of ``path`` that have happened by now (the rest has not
        arrived yet); the message's delivery status, raw status, delivered and last-change
        times after them."""
        status, raw, delivered_at, last_change = Delivery.QUEUED, "", None, sent
        previous = ""
        for at, to_value, provider_status, source, extra in path:
            if at > self.now:
                break
            detail = {"provider_status": provider_status, **extra} if provider_status else extra
            events.append(
                dict(
                    message_id=message_id,
                    kind=EventKind.DELIVERY,
                    from_value=previous,
                    to_value=to_value,
                    source=source,
                    actor="",
                    created_at=_dt(at),
                    detail=detail,
                )
            )
            previous = status = to_value
            raw, last_change = provider_status, at
            if to_value == Delivery.DELIVERED:
                delivered_at = at
        return status, raw, delivered_at, last_change

    # -- the pumping episode -----------------------------------------------------------------------

    def pumping_start(self, days: int) -> float:
        return self.now - min(PUMPING.hours_ago * 3600, days * 86400 * 0.5)

    def pumping(
        self, pumped: list[DemoRecipient], days: int
    ) -> tuple[list[Row], list[Row], list[Row]]:
        """The episode's messages: sign-up codes through Twilio, a few a minute, none typed.

        Delivered like any message (the attacker's range answers), then expired.
        """
        rng = self.rng
        batch: list[Row] = []
        events: list[Row] = []
        sent = self.pumping_start(days)
        window = self.windows[("twilio", "signup")]
        sender = TWILIO_SENDERS[1]
        for user in pumped:
            sent += rng.uniform(5.0, 20.0)
            message_id = uuid.UUID(int=self.ids.getrandbits(128), version=4)
            status, raw, delivered_at, last_change = self._delivery_events(
                message_id, sent, self._twilio(sent, sender, False, False), events
            )
            feedback = Feedback.PENDING
            expired_at = sent + window + rng.uniform(0.5, 60.0)
            if expired_at <= self.now:
                feedback, last_change = Feedback.EXPIRED, max(last_change, expired_at)
                events.append(
                    dict(
                        message_id=message_id,
                        kind=EventKind.FEEDBACK,
                        from_value=Feedback.PENDING,
                        to_value=Feedback.EXPIRED,
                        source=Source.SWEEP,
                        actor="",
                        created_at=_dt(expired_at),
                        detail={},
                    )
                )
            batch.append(
                dict(
                    id=message_id,
                    provider="twilio",
                    provider_message_id=f"SM{self.ids.getrandbits(128):032x}",
                    channel=Channel.SMS,
                    purpose="signup",
                    sender=sender,
                    recipient_hash=user.phone_hash,
                    recipient_masked=user.phone_masked,
                    country=user.country,
                    recipient_prefix=user.phone_prefix,
                    delivery_status=status,
                    provider_status=raw[:64],
                    feedback=feedback,
                    feedback_requested=True,
                    confirmed_late=False,
                    sent_at=_dt(sent),
                    delivered_at=_dt(delivered_at) if delivered_at is not None else None,
                    confirmed_at=None,
                    feedback_deadline=_dt(sent + window),
                    metadata={"demo": True},
                    created_at=_dt(sent),
                    updated_at=_dt(last_change),
                )
            )
        self.pumping_end = sent
        return batch, events, []

    def _confirm_source(self) -> tuple[str, str]:
        """Who confirms: mostly the host's Python code, some its API clients, rarely support."""
        draw = self.rng.random()
        if draw < 0.7:
            return Source.PYTHON, ""
        if draw < 0.995:
            return Source.API, "otp-service"
        return Source.ADMIN, "support"

    def _call(
        self, message_id: uuid.UUID, provider: str, outcome: str, at: float, at_dt: datetime
    ) -> Row:
        """A report the outbox wrote at ``at`` and a worker delivered shortly after."""
        rng = self.rng
        attempts = 1
        took = _lognormal_clipped(rng, 0.4, 0.6, 0.05, 5.0)
        if rng.random() < 0.01:
            # A throttled first attempt, retried after the backoff.
            attempts = 2
            took += rng.uniform(0.0, 5.0)
        return dict(
            message_id=message_id,
            provider=provider,
            operation=Operation.REPORT_FEEDBACK,
            payload={"outcome": outcome},
            state=CallState.SUCCEEDED,
            attempts=attempts,
            next_attempt_at=at_dt,
            created_at=at_dt,
            completed_at=_dt(min(at + took, self.now)),
            idempotency_key=uuid.UUID(int=self.ids.getrandbits(128), version=4),
        )

    # -- delivery paths per provider -------------------------------------------------------------

    def _track_source(self) -> str:
        return Source.PYTHON if self.rng.random() < 0.8 else Source.API

    def _twilio(
        self, sent: float, sender: str, converted: bool, incident: bool
    ) -> list[tuple[float, str, str, str, dict]]:
        rng = self.rng
        initial = "accepted" if sender.startswith("MG") else "queued"
        path = [(sent, Delivery.QUEUED, initial, self._track_source(), {})]
        handed = sent + rng.uniform(0.5, 4.0)
        draw = rng.random()
        if converted:
            outcome = Delivery.DELIVERED if draw < 0.95 else Delivery.SENT
        elif incident:
            outcome = Delivery.UNDELIVERED if draw < 0.75 else Delivery.DELIVERED
        else:
            outcome = _pick(draw, TWILIO_NOT_CONVERTED)
        if outcome == Delivery.FAILED:
            code = rng.choice(TWILIO_FAILED_CODES)
            path.append((handed, Delivery.FAILED, "failed", Source.WEBHOOK, {"error_code": code}))
            return path
        path.append((handed, Delivery.SENT, "sent", Source.WEBHOOK, {}))
        if outcome == Delivery.DELIVERED:
            receipt = handed + _lognormal_clipped(rng, 4.0, 0.8, 0.5, 600.0)
            path.append((receipt, Delivery.DELIVERED, "delivered", Source.WEBHOOK, {}))
        elif outcome == Delivery.UNDELIVERED:
            code = rng.choice(TWILIO_UNDELIVERED_CODES)
            receipt = handed + rng.uniform(5.0, 300.0)
            path.append(
                (receipt, Delivery.UNDELIVERED, "undelivered", Source.WEBHOOK, {"error_code": code})
            )
        # Delivery.SENT: the carrier never returned a receipt; Twilio stays at "sent".
        return path

    def _aws(self, sent: float, converted: bool) -> list[tuple[float, str, str, str, dict]]:
        rng = self.rng
        # SendTextMessage returns only a MessageId: no raw status at first.
        path = [(sent, Delivery.QUEUED, "", self._track_source(), {})]
        handed = sent + rng.uniform(0.5, 4.0)
        draw = rng.random()
        if converted:
            outcome = Delivery.DELIVERED if draw < 0.94 else Delivery.SENT
        else:
            outcome = _pick(draw, AWS_NOT_CONVERTED)
        if outcome == Delivery.FAILED:
            path.append((handed, Delivery.FAILED, "TEXT_INVALID", Source.WEBHOOK, {}))
            return path
        if outcome == Delivery.REJECTED:
            path.append((handed, Delivery.REJECTED, rng.choice(AWS_REJECTED), Source.WEBHOOK, {}))
            return path
        path.append((handed, Delivery.SENT, "TEXT_SUCCESSFUL", Source.WEBHOOK, {}))
        if outcome == Delivery.DELIVERED:
            receipt = handed + _lognormal_clipped(rng, 5.0, 0.8, 0.5, 900.0)
            path.append((receipt, Delivery.DELIVERED, "TEXT_DELIVERED", Source.WEBHOOK, {}))
        elif outcome == Delivery.UNDELIVERED:
            receipt = handed + rng.uniform(5.0, 600.0)
            raw = rng.choice(AWS_UNDELIVERED)
            path.append((receipt, Delivery.UNDELIVERED, raw, Source.WEBHOOK, {}))
        else:
            # No final carrier event: AWS reports UNKNOWN after 72 hours (if that has passed).
            path.append(
                (sent + AWS_UNKNOWN_AFTER, Delivery.UNKNOWN, "TEXT_UNKNOWN", Source.WEBHOOK, {})
            )
        return path

    def _sms(
        self, profile: SmsProfile, sent: float, converted: bool
    ) -> list[tuple[float, str, str, str, dict]]:
        """An SMS provider's path: queued, handed to the carrier, then a receipt (or none)."""
        rng = self.rng
        path = [(sent, Delivery.QUEUED, profile.queued, self._track_source(), {})]
        handed = sent + rng.uniform(0.5, 4.0)
        draw = rng.random()
        if converted:
            outcome = Delivery.DELIVERED if draw < 0.95 else Delivery.SENT
        else:
            outcome = _pick(draw, SMS_NOT_CONVERTED)
        if profile.sent is None and outcome == Delivery.SENT:
            outcome = Delivery.DELIVERED  # no intermediate step to stay at
        error = (
            {profile.error_detail_key: rng.choice(profile.error_codes)}
            if profile.error_detail_key and profile.error_codes
            else {}
        )
        finals = {Delivery.FAILED: profile.failed, Delivery.REJECTED: profile.rejected}
        if outcome in finals and not finals[outcome]:
            outcome = Delivery.UNDELIVERED  # the provider has no such status: a receipt says so
        if outcome in finals:
            path.append((handed, outcome, rng.choice(finals[outcome]), profile.source, error))
            return path
        if profile.sent is not None:
            path.append((handed, Delivery.SENT, profile.sent, profile.source, {}))
        receipt = handed + _lognormal_clipped(rng, 4.5, 0.8, 0.5, 600.0)
        if outcome == Delivery.UNDELIVERED and profile.undelivered:
            path.append(
                (
                    receipt,
                    Delivery.UNDELIVERED,
                    rng.choice(profile.undelivered),
                    profile.source,
                    error,
                )
            )
        elif outcome != Delivery.SENT:
            path.append((receipt, Delivery.DELIVERED, profile.delivered, profile.source, {}))
        # Delivery.SENT: the carrier never returned a receipt.
        return path

    def _chime(self, sent: float, converted: bool) -> list[tuple[float, str, str, str, dict]]:
        rng = self.rng
        source = self._track_source()
        if rng.random() < 0.7:
            # No channel flow: the send call answers SENT, delivered to the channel at once.
            return [(sent, Delivery.DELIVERED, "SENT", source, {})]
        # A channel flow processes the message first: PENDING until the poll sees the result.
        polled = sent + rng.uniform(1.0, 10.0)
        draw = rng.random()
        if converted or draw < 0.8:
            final = (Delivery.DELIVERED, "SENT")
        elif draw < 0.9:
            final = (Delivery.FAILED, "FAILED")
        else:
            final = (Delivery.REJECTED, "DENIED")
        return [
            (sent, Delivery.QUEUED, "PENDING", source, {}),
            (polled, final[0], final[1], Source.POLL, {}),
        ]


def _dt(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _guard_block(generator: _Generator, pumped: list[DemoRecipient], days: int, using: str) -> None:
    """The block the guard made after the episode's last message, and the sends it refused."""
    prefix, country = pumped[0].phone_prefix, pumped[0].country
    config = app_settings.GUARD
    since = generator.pumping_end + 1.0
    start = generator.pumping_start(days)
    block = (
        GuardBlock.objects.using(using)
        .filter(kind=GuardBlock.Kind.PREFIX, value=prefix, unblocked_at__isnull=True)
        .order_by("-since")
        .first()
    )
    if block is None:
        minutes = max(1, round((since - start) / 60))
        block = GuardBlock.objects.using(using).create(
            kind=GuardBlock.Kind.PREFIX,
            value=prefix,
            reason=(
                f"{prefix}: 0 of {len(pumped)} sends converted (0.0 %) in {minutes} minutes, "
                f"below the floor of {100 * config['MAX_CONVERSION']:.1f} %."
            ),
            detail={
                "country": country,
                "window_seconds": config["WINDOW"],
                "attempted": len(pumped),
                "confirmed": 0,
                "rate": 0.0,
                "baseline_attempted": 0,
                "baseline_rate": None,
            },
            automatic=True,
            created_by="guard",
            since=_dt(since),
            until=_dt(since + config["BLOCK_FOR"]),
        )
    rng = random.Random(f"{since}:refused")
    at, refused = since, []
    for _ in range(PUMPING.refused):
        # The bot keeps trying for a while, faster at first, then gives up.
        at += rng.expovariate(1 / 12.0)
        if at > generator.now:
            break
        refused.append(
            BlockedSend(
                at=_dt(at),
                code="prefix_blocked",
                provider="twilio",
                purpose="signup",
                channel=Channel.SMS,
                country=country,
                prefix=prefix,
                client_kind="ip",
                block=block,
            )
        )
    BlockedSend.objects.using(using).bulk_create(refused)
