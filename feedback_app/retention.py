"""Retention: deleting messages older than RETENTION_DAYS with their events and provider calls,
and the guard's records of refused sends older than that.

Deleted in chunks of primary keys, one short transaction each, so a purge of millions of rows
never holds long locks, can be interrupted at any point, and a re-run simply continues. Each
chunk recomputes the rollups of the hours it deleted from, in its own transaction, so the
dashboard stops counting the deleted messages at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import TruncHour
from django.utils import timezone

from . import rollups
from .conf import app_settings
from .models import BlockedSend, Message, MessageEvent, ProviderCall, Verification
from .outbox import OPEN_STATES

#: Messages deleted per transaction.
DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class PurgeResult:
    messages: int
    events: int
    calls: int
    #: The guard's records of refused sends (``BlockedSend``).
    blocked_sends: int = 0


def cutoff(days: int | None = None, now: datetime | None = None) -> datetime | None:
    """Messages sent before this are purged; None when retention is off (RETENTION_DAYS None)."""
    days = app_settings.RETENTION_DAYS if days is None else days
    if days is None:
        return None
    return (now or timezone.now()) - timedelta(days=int(days))


def purgeable(before: datetime) -> QuerySet[Message]:
    """Messages sent before ``before``, except those with a provider call still open.

    A report still pending or in flight is kept until it ends (succeeded, failed or gave up),
    so a purge never pulls the row from under a worker delivering it.
    """
    busy = ProviderCall.objects.filter(state__in=OPEN_STATES).values("message_id")
    return Message.objects.filter(sent_at__lt=before).exclude(pk__in=busy)


def count(before: datetime) -> PurgeResult:
    """What a purge would delete now (``--dry-run``)."""
    messages = purgeable(before)
    return PurgeResult(
        messages=messages.count(),
        events=MessageEvent.objects.filter(message__in=messages).count(),
        calls=ProviderCall.objects.filter(message__in=messages).count(),
        blocked_sends=BlockedSend.objects.filter(at__lt=before).count(),
    )


def purge(
    before: datetime,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Callable[[int], None] | None = None,
) -> PurgeResult:
    """Delete ``purgeable(before)`` messages, their events and calls, ``batch_size`` at a time.

    ``progress(messages_deleted_so_far)`` is called after each committed batch.
    """
    totals = [0, 0, 0]
    while True:
        with transaction.atomic():
            # Oldest first, by primary key within a chunk: each statement is a plain
            # DELETE ... WHERE id IN (...) on an indexed column, whatever the database.
            ids = list(
                purgeable(before).order_by("sent_at").values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                break
            hours = list(
                Message.objects.filter(pk__in=ids)
                .order_by()
                .annotate(hour=TruncHour("sent_at", tzinfo=UTC))
                .values_list("hour", flat=True)
                .distinct()
            )
            verification_ids = set(
                Message.objects.filter(pk__in=ids, verification__isnull=False).values_list(
                    "verification_id", flat=True
                )
            )
            # Children first, explicitly: no rows are loaded into Python for the cascade.
            totals[1] += MessageEvent.objects.filter(message_id__in=ids).delete()[0]
            totals[2] += ProviderCall.objects.filter(message_id__in=ids).delete()[0]
            totals[0] += Message.objects.filter(pk__in=ids).delete()[0]
            # A verification goes with the last of its messages.
            Verification.objects.filter(pk__in=verification_ids).exclude(
                Exists(Message.objects.filter(verification=OuterRef("pk")))
            ).delete()
            # A deletion leaves no updated_at for the next refresh to see.
            rollups.recompute([(hour, hour + timedelta(hours=1)) for hour in hours])
        if progress is not None:
            progress(totals[0])
        if len(ids) < batch_size:
            break
    return PurgeResult(
        messages=totals[0],
        events=totals[1],
        calls=totals[2],
        blocked_sends=_purge_blocked_sends(before, batch_size),
    )


def _purge_blocked_sends(before: datetime, batch_size: int) -> int:
    """Delete refused-send records from before ``before``, a batch per transaction.

    The blocks themselves (``GuardBlock``) are kept: few rows, and the record of who lifted what.
    """
    deleted = 0
    while True:
        ids = list(
            BlockedSend.objects.filter(at__lt=before)
            .order_by("at")
            .values_list("pk", flat=True)[:batch_size]
        )
        if not ids:
            return deleted
        deleted += BlockedSend.objects.filter(pk__in=ids).delete()[0]
