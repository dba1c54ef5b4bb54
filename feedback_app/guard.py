"""The SMS-pumping guard: ``services.send`` asks it before any provider call (docs/guard.md).

In order: the purpose's country lists, the blocks in force (``blocks.active_blocks``, no query
on most sends), then the rate limits of ``FEEDBACK_APP["GUARD"]``. A refusal writes a
``BlockedSend`` (what refused, never the number) and raises ``SendBlocked``.

Rate limits are fixed windows counted in a Django cache with ``add`` and ``incr``, the scheme of
django-ratelimit's core (a key per window, kept a few seconds past it); Redis makes each
increment atomic across processes, so concurrent sends never pass a limit.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass

from django.core.cache import BaseCache, caches
from django.core.cache.backends.redis import RedisCache
from django.utils import timezone
from django.utils.translation import gettext as _

from . import blocks
from .conf import app_settings
from .errors import SendBlocked, field_error
from .models import BlockedSend, GuardBlock
from .recipients import Recipient, recipient_hash

logger = logging.getLogger(__name__)

#: Seconds a window's counter outlives the window, so it never expires while still counted.
EXPIRATION_FUDGE = 5
#: The kinds of client the API passes ("user:<id>", "ip:<address>"); others are "other".
CLIENT_KINDS = ("user", "ip")


@dataclass(frozen=True)
class Limit:
    """One rate limit: its setting, the code a refusal carries, and what it counts."""

    setting: str
    code: str
    description: str


#: The rate limits, in the order they are counted.
LIMITS: tuple[Limit, ...] = (
    Limit("RECIPIENT_LIMIT", "recipient_rate", "sends to this recipient"),
    Limit("VERIFICATION_LIMIT", "verification_rate", "sends in this verification"),
    Limit("CLIENT_LIMIT", "client_rate", "sends asked by this client"),
    Limit("PREFIX_LIMIT", "prefix_rate", "sends to this destination prefix"),
    Limit("COUNTRY_LIMIT", "country_rate", "sends to this country"),
)
#: Codes of refusals that are not rate limits (the API answers 403).
PREFIX_BLOCKED = "prefix_blocked"
COUNTRY_BLOCKED = "country_blocked"
COUNTRY_NOT_ALLOWED = "country_not_allowed"
#: Every code ``SendBlocked`` may carry.
CODES: tuple[str, ...] = (
    *(limit.code for limit in LIMITS),
    PREFIX_BLOCKED,
    COUNTRY_BLOCKED,
    COUNTRY_NOT_ALLOWED,
)


def check_key(field: str, value: object) -> str | None:
    """A verification or client key as given to ``send()``; raises ``ValidationError``."""
    if value is None:
        return None
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str) or not value or len(value) > 256 or "\x00" in value:
        raise field_error(field, _("Expected a non-empty string of at most 256 characters."))
    return value


def check(
    recipient: Recipient,
    *,
    provider: str,
    purpose: str,
    channel: str,
    verification: str | None = None,
    client: str | None = None,
) -> None:
    """Raise ``SendBlocked`` (after recording it) if the guard refuses this send."""
    config = app_settings.GUARD
    if not config["ENABLED"]:
        return
    try:
        _check_countries(config, recipient, purpose)
        _check_blocks(recipient)
        _count(config, recipient, verification, client)
    except SendBlocked as refusal:
        BlockedSend.objects.create(
            at=timezone.now(),
            code=refusal.code,
            provider=provider,
            purpose=purpose,
            channel=channel,
            country=recipient.country,
            prefix=recipient.prefix,
            client_kind=_client_kind(client),
            block_id=refusal.block_id,
        )
        logger.info("feedback_app: guard refused a send: %s", refusal.code)
        raise


def _client_kind(client: str | None) -> str:
    if not client:
        return ""
    kind = client.partition(":")[0]
    return kind if kind in CLIENT_KINDS else "other"


def _countries(rules: dict, purpose: str) -> list[str] | None:
    if purpose in rules:
        return rules[purpose]
    return rules.get("*")


def _check_countries(config: dict, recipient: Recipient, purpose: str) -> None:
    if not recipient.prefix:
        return  # a chat address: no country to check
    # A non-geographic number (+882, +979: no country) is outside every allow list.
    country = recipient.country
    allowed = _countries(config["ALLOWED_COUNTRIES"], purpose)
    if allowed and country not in allowed:
        raise SendBlocked(
            COUNTRY_NOT_ALLOWED,
            _("Sending %(purpose)s messages to this country is not allowed.")
            % {"purpose": purpose},
        )
    if country in (_countries(config["BLOCKED_COUNTRIES"], purpose) or ()):
        raise SendBlocked(
            COUNTRY_BLOCKED,
            _("Sending %(purpose)s messages to this country is blocked.") % {"purpose": purpose},
        )


def _check_blocks(recipient: Recipient) -> None:
    if not recipient.prefix and not recipient.country:
        return
    found = blocks.active_blocks().match(recipient.address, recipient.country, timezone.now())
    if found is None:
        return
    kind, block_id = found
    if kind == GuardBlock.Kind.PREFIX:
        raise SendBlocked(
            PREFIX_BLOCKED,
            _("Sending to this destination prefix is blocked (suspected SMS pumping)."),
            block_id=block_id,
        )
    raise SendBlocked(COUNTRY_BLOCKED, _("Sending to this country is blocked."), block_id=block_id)


def _cache() -> BaseCache:
    return caches[app_settings.GUARD["CACHE"]]


#: One counter to increment: (limit name, what it counts, window seconds).
Counter = tuple[str, str, int]


def increment(counters: list[Counter]) -> list[tuple[int, int]]:
    """Count one more in each counter's current window: for each, (the count with this one,
    seconds until its window ends).

    On Django's Redis cache, one pipelined round trip of INCR and EXPIRE per counter (the
    cache's own client and key names); on any other cache, ``incr``, and ``add`` for a
    window's first count, as django-ratelimit does.
    """
    now = timezone.now().timestamp()
    cache = _cache()
    keys = [
        f"feedback_app:guard:{name}:{window}:{int(now // window)}:{ident}"
        for name, ident, window in counters
    ]
    remaining = [max(1, math.ceil(window - now % window)) for _, _, window in counters]
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(None, write=True)
        pipeline = client.pipeline(transaction=False)
        for key, (_, _, window) in zip(keys, counters, strict=True):
            key = cache.make_and_validate_key(key)
            pipeline.incr(key)
            # Outlives the window: the key is never counted after its window, never lost in it.
            pipeline.expire(key, window + EXPIRATION_FUDGE)
        counts = pipeline.execute()[::2]
    else:
        counts = []
        for key, (_, _, window) in zip(keys, counters, strict=True):
            try:
                count = cache.incr(key)
            except ValueError:  # the window's first: create it, unless another process just did
                count = 1 if cache.add(key, 1, window + EXPIRATION_FUDGE) else cache.incr(key)
            counts.append(count)
    return list(zip(counts, remaining, strict=True))


def _count(
    config: dict, recipient: Recipient, verification: str | None, client: str | None
) -> None:
    idents = {
        # Hashed with HASH_KEY: a cache holds no number, key or address in clear.
        "RECIPIENT_LIMIT": recipient.hash,
        "VERIFICATION_LIMIT": recipient_hash(f"verification:{verification}")
        if verification
        else "",
        "CLIENT_LIMIT": recipient_hash(f"client:{client}") if client else "",
        "PREFIX_LIMIT": recipient.prefix,
        "COUNTRY_LIMIT": recipient.country,
    }
    limits = [
        (limit, config[limit.setting])
        for limit in LIMITS
        if config[limit.setting] and idents[limit.setting]
    ]
    counters: list[Counter] = [
        (limit.code, idents[limit.setting], rule[1]) for limit, rule in limits
    ]
    watch = bool(config["AUTO_BLOCK"] and recipient.prefix)
    if watch:
        counters.append(("prefix_seen", recipient.prefix, config["WINDOW"]))
    if not counters:
        return
    # One round trip for all of them; a refused send still counts (a bot stays refused).
    counted = increment(counters)
    for (limit, (most, window)), (count, retry_after) in zip(limits, counted, strict=False):
        if count > most:
            raise SendBlocked(
                limit.code,
                _("Too many %(what)s: at most %(most)d in %(window)d seconds.")
                % {"what": _(limit.description), "most": most, "window": window},
                retry_after=retry_after,
            )
    if watch:
        _watch_prefix(config, recipient.prefix, counted[-1][0])


def _watch_prefix(config: dict, prefix: str, count: int) -> None:
    """The send after each ``MIN_ATTEMPTS`` sends to a prefix in a window looks at that prefix's
    conversion at once (one grouped query), so pumping is stopped before the next periodic run.
    """
    floor = config["MIN_ATTEMPTS"]
    if count <= floor or (count - 1) % floor:
        return
    created = blocks.block_pumped_prefixes(prefixes=[prefix])
    if created:
        raise SendBlocked(
            PREFIX_BLOCKED,
            _("Sending to this destination prefix is blocked (suspected SMS pumping)."),
            block_id=created[0].pk,
        )
