"""The guard's blocks: prefixes and countries refused until a time or until lifted.

Automatic blocks come from ``block_pumped_prefixes`` (a periodic job, and send time when a
prefix's count reaches ``MIN_ATTEMPTS``); manual ones from ``block`` (``manage.py
feedback_guard``). Sends consult ``active_blocks``, a per-process copy read again every
``BLOCKS_REFRESH`` seconds, so a send costs no query for them.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from . import signals
from .alerts import BASELINE, below_baseline
from .conf import app_settings
from .errors import field_error
from .models import GuardBlock, Message
from .states import Feedback

logger = logging.getLogger(__name__)

_PREFIX = re.compile(r"^\+[1-9][0-9]{0,14}$")


@dataclass(frozen=True)
class ActiveBlocks:
    """The blocks in force when read: value -> (block id, until or None)."""

    prefixes: dict[str, tuple[int, datetime | None]]
    countries: dict[str, tuple[int, datetime | None]]

    def match(self, address: str, country: str, now: datetime) -> tuple[str, int] | None:
        """("prefix" or "country", block id) of a block covering this number, or None."""
        for value, (block_id, until) in self.prefixes.items():
            if address.startswith(value) and (until is None or until > now):
                return GuardBlock.Kind.PREFIX, block_id
        found = self.countries.get(country) if country else None
        if found and (found[1] is None or found[1] > now):
            return GuardBlock.Kind.COUNTRY, found[0]
        return None


_lock = threading.Lock()
_snapshot: tuple[float, ActiveBlocks] | None = None


def active_filter(now: datetime) -> Q:
    """The blocks in force at ``now``."""
    return Q(unblocked_at__isnull=True, since__lte=now) & (Q(until__isnull=True) | Q(until__gt=now))


def active_blocks() -> ActiveBlocks:
    """The blocks in force, at most ``BLOCKS_REFRESH`` seconds old in this process."""
    global _snapshot
    snapshot = _snapshot
    refresh = app_settings.GUARD["BLOCKS_REFRESH"]
    if snapshot is not None and time.monotonic() - snapshot[0] < refresh:
        return snapshot[1]
    prefixes: dict[str, tuple[int, datetime | None]] = {}
    countries: dict[str, tuple[int, datetime | None]] = {}
    rows = GuardBlock.objects.filter(active_filter(timezone.now())).values_list(
        "id", "kind", "value", "until"
    )
    for block_id, kind, value, until in rows:
        target = prefixes if kind == GuardBlock.Kind.PREFIX else countries
        target[value] = (block_id, until)
    blocks = ActiveBlocks(prefixes=prefixes, countries=countries)
    with _lock:
        _snapshot = (time.monotonic(), blocks)
    return blocks


def forget() -> None:
    """Drop this process's copy: the next send reads the blocks again."""
    global _snapshot
    with _lock:
        _snapshot = None


def clean_value(kind: str, value: object) -> str:
    """A block's value checked for its kind; raises ``ValidationError`` naming the field."""
    if kind == GuardBlock.Kind.PREFIX:
        if not isinstance(value, str) or not _PREFIX.match(value):
            raise field_error("value", _("A prefix is + and 1 to 15 digits (+2347)."), "invalid")
        return value
    if kind == GuardBlock.Kind.COUNTRY:
        code = value.upper() if isinstance(value, str) else ""
        if code not in phonenumbers.SUPPORTED_REGIONS:
            raise field_error(
                "value", _("Not an ISO 3166 country code %(value)r.") % {"value": value}
            )
        return code
    raise field_error("kind", _("Unknown kind %(value)r.") % {"value": kind}, "invalid_choice")


def block(
    kind: str,
    value: str,
    *,
    reason: str,
    until: datetime | None = None,
    actor: str = "",
    automatic: bool = False,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> tuple[GuardBlock, bool]:
    """Block ``value`` (a prefix or a country code); (the block, True) when this call created it,
    (the block in force, False) when one already covers the same value."""
    value = clean_value(kind, value)
    now = now or timezone.now()
    if until is not None and until <= now:
        raise field_error("until", _("The end of a block must be in the future."), "invalid")
    if not isinstance(reason, str) or not reason.strip():
        raise field_error("reason", _("Say why (it is shown in the admin)."), "required")
    with transaction.atomic():
        _lock_value(kind, value)
        existing = (
            GuardBlock.objects.select_for_update()
            .filter(active_filter(now), kind=kind, value=value)
            .first()
        )
        if existing is not None:
            return existing, False
        created = GuardBlock.objects.create(
            kind=kind,
            value=value,
            reason=reason.strip()[:255],
            detail=detail or {},
            automatic=automatic,
            created_by=actor[:150],
            since=now,
            until=until,
        )
        # Now for this thread, and again once other threads can read the change.
        forget()
        transaction.on_commit(forget)
        transaction.on_commit(lambda: _send_robust(signals.guard_blocked, block=created))
    logger.warning("feedback_app: guard blocked %s %s: %s", kind, value, created.reason)
    return created, True


def _lock_value(kind: str, value: str) -> None:
    """Serialize the blocking of one value until the transaction ends, so two processes that
    find the same pumped prefix at once create one block: ``select_for_update`` locks only a
    block that exists. PostgreSQL: a transaction-level advisory lock on the value. SQLite has
    one writer at a time: a second transaction that read before the first committed fails
    (database is locked) rather than add a duplicate."""
    connection = transaction.get_connection()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                [f"feedback_app:block:{kind}:{value}"],
            )


def unblock(target: GuardBlock | int, *, actor: str = "") -> bool:
    """Lift a block; True when this call lifted it, False when it was no longer in force."""
    block_id = target.pk if isinstance(target, GuardBlock) else target
    now = timezone.now()
    with transaction.atomic():
        lifted = GuardBlock.objects.filter(active_filter(now), pk=block_id).update(
            unblocked_at=now, unblocked_by=actor[:150]
        )
        if not lifted:
            if not GuardBlock.objects.filter(pk=block_id).exists():
                raise GuardBlock.DoesNotExist(f"No guard block {block_id}.")
            return False
        row = GuardBlock.objects.get(pk=block_id)
        # Now for this thread, and again once other threads can read the change.
        forget()
        transaction.on_commit(forget)
        transaction.on_commit(lambda: _send_robust(signals.guard_unblocked, block=row, actor=actor))
    if isinstance(target, GuardBlock):
        target.unblocked_at, target.unblocked_by = row.unblocked_at, row.unblocked_by
    return True


def _send_robust(signal: Any, **kwargs: Any) -> None:
    # The block is committed: a failing receiver is logged, not turned into the caller's error.
    for receiver, result in signal.send_robust(sender=GuardBlock, **kwargs):
        if isinstance(result, Exception):
            logger.error(
                "feedback_app: a guard signal receiver (%r) raised",
                receiver,
                exc_info=(type(result), result, result.__traceback__),
            )


def _rate(attempted: int, confirmed: int) -> float | None:
    return confirmed / attempted if attempted else None


def block_pumped_prefixes(
    now: datetime | None = None, *, prefixes: list[str] | None = None
) -> list[GuardBlock]:
    """Block the prefixes (all, or ``prefixes``) whose sends over the last ``WINDOW`` seconds
    (left aside those younger than ``SETTLE``, which may not be confirmed yet) reach
    ``MIN_ATTEMPTS`` and convert below ``MAX_CONVERSION``, or below their own rate over the
    30 days before by more than ``DROP``. Returns the blocks created."""
    config = app_settings.GUARD
    if not config["ENABLED"] or not config["AUTO_BLOCK"]:
        return []
    now = now or timezone.now()
    end = now - timedelta(seconds=config["SETTLE"])
    start = now - timedelta(seconds=config["WINDOW"])
    min_attempts = config["MIN_ATTEMPTS"]
    recent = Message.objects.filter(sent_at__gte=start, sent_at__lt=end).exclude(
        recipient_prefix=""
    )
    if prefixes is not None:
        recent = recent.filter(recipient_prefix__in=prefixes)
    counts = {
        row["recipient_prefix"]: (row["attempted"], row["confirmed"], row["country"])
        for row in recent.values("recipient_prefix")
        .annotate(
            attempted=Count("pk"),
            confirmed=Count("pk", filter=Q(feedback=Feedback.CONFIRMED)),
            # One calling code, one country mostly: for people reading the block.
            country=Max("country"),
        )
        .filter(attempted__gte=min_attempts)
    }
    if not counts:
        return []
    blocked = set(active_blocks().prefixes) | set(
        GuardBlock.objects.filter(active_filter(now), kind=GuardBlock.Kind.PREFIX).values_list(
            "value", flat=True
        )
    )
    counts = {key: value for key, value in counts.items() if key not in blocked}
    # The baseline only for the prefixes the floor left: an indexed read of a few prefixes.
    baseline_end = start
    baseline = {
        row["recipient_prefix"]: (row["attempted"], row["confirmed"])
        for row in Message.objects.filter(
            recipient_prefix__in=list(counts),
            sent_at__gte=baseline_end - BASELINE,
            sent_at__lt=baseline_end,
        )
        .values("recipient_prefix")
        .annotate(
            attempted=Count("pk"),
            confirmed=Count("pk", filter=Q(feedback=Feedback.CONFIRMED)),
        )
    }
    created = []
    for prefix, (attempted, confirmed, country) in sorted(counts.items()):
        rate = _rate(attempted, confirmed) or 0.0
        base_attempted, base_confirmed = baseline.get(prefix, (0, 0))
        base_rate = _rate(base_attempted, base_confirmed)
        if rate < config["MAX_CONVERSION"]:
            reason = _(
                "%(prefix)s: %(confirmed)d of %(attempted)d sends converted (%(rate).1f %%) in "
                "%(minutes)d minutes, below the floor of %(floor).1f %%."
            ) % {
                "prefix": prefix,
                "confirmed": confirmed,
                "attempted": attempted,
                "rate": 100 * rate,
                "minutes": config["WINDOW"] // 60,
                "floor": 100 * config["MAX_CONVERSION"],
            }
        elif below_baseline(
            attempted,
            rate,
            base_attempted,
            base_rate,
            min_volume=min_attempts,
            drop=config["DROP"],
        ):
            reason = _(
                "%(prefix)s: %(confirmed)d of %(attempted)d sends converted (%(rate).1f %%) in "
                "%(minutes)d minutes, against %(baseline).1f %% over the 30 days before."
            ) % {
                "prefix": prefix,
                "confirmed": confirmed,
                "attempted": attempted,
                "rate": 100 * rate,
                "minutes": config["WINDOW"] // 60,
                "baseline": 100 * (base_rate or 0.0),
            }
        else:
            continue
        new, was_created = block(
            GuardBlock.Kind.PREFIX,
            prefix,
            reason=reason,
            until=now + timedelta(seconds=config["BLOCK_FOR"]),
            actor="guard",
            automatic=True,
            detail={
                "country": country or "",
                "window_seconds": config["WINDOW"],
                "attempted": attempted,
                "confirmed": confirmed,
                "rate": rate,
                "baseline_attempted": base_attempted,
                "baseline_rate": base_rate,
            },
            now=now,
        )
        if was_created:
            created.append(new)
    return created
