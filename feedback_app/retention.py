"""Retention: deleting messages older than RETENTION_DAYS with their events and provider calls,
and the guard's records of refused sends older than that.

Deleted in batches of the oldest messages, one short transaction each, so a purge of millions
of rows never holds long locks, can be interrupted at any point, and a re-run simply continues.
A batch reads its messages once and deletes from each table with one statement. Each batch
recomputes the rollups of the hours it deleted from, in its own transaction, so the dashboard
stops counting the deleted messages at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import DO_NOTHING, Exists, Model, OuterRef, QuerySet, signals
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
    # Where the last batch ended: each batch starts its index scan there, instead of
    # stepping again over the index entries of the rows deleted before it.
    floor: datetime | None = None
    while True:
        with transaction.atomic():
            messages = purgeable(before)
            if floor is not None:
                messages = messages.filter(sent_at__gte=floor)
            batch = list(
                messages.order_by("sent_at").values_list("pk", "sent_at", "verification_id")[
                    :batch_size
                ]
            )
            if not batch:
                break
            ids = [pk for pk, _, _ in batch]
            deleted = _delete_messages(ids, {v for _, _, v in batch if v is not None})
            # A deletion leaves no updated_at for the next refresh to see.
            hours = {
                at.astimezone(UTC).replace(minute=0, second=0, microsecond=0) for _, at, _ in batch
            }
            rollups.recompute([(hour, hour + timedelta(hours=1)) for hour in sorted(hours)])
        totals = [total + count for total, count in zip(totals, deleted, strict=True)]
        floor = batch[-1][1]
        if progress is not None:
            progress(totals[0])
        if len(batch) < batch_size:
            break
    return PurgeResult(
        messages=totals[0],
        events=totals[1],
        calls=totals[2],
        blocked_sends=_purge_blocked_sends(before, batch_size),
    )


def _delete_messages(ids: list[Any], verification_ids: set[Any]) -> tuple[int, int, int]:
    """Delete the messages ``ids`` with their events and calls, and those of
    ``verification_ids`` left without messages; returns (messages, events, calls).

    One set-based statement per table. Children first and explicitly: Django's collector
    would load every message to cascade to them, which was most of a batch's time.
    """
    events = MessageEvent.objects.filter(message_id__in=ids).delete()[0]
    calls = ProviderCall.objects.filter(message_id__in=ids).delete()[0]
    Verification.objects.filter(converting_message_id__in=ids).update(converting_message=None)
    messages = _delete(Message.objects.filter(pk__in=ids), _MESSAGE_RELATIONS)
    # A verification goes with the last of its messages.
    _delete(
        Verification.objects.filter(pk__in=verification_ids).exclude(
            Exists(Message.objects.filter(verification=OuterRef("pk")))
        ),
        _VERIFICATION_RELATIONS,
    )
    return messages, events, calls


#: The relations to Message and Verification that ``_delete_messages`` empties itself first.
_MESSAGE_RELATIONS = {
    (MessageEvent, "message"),
    (ProviderCall, "message"),
    (Verification, "converting_message"),
}
_VERIFICATION_RELATIONS = {(Message, "verification")}


def _delete(rows: QuerySet[Any], handled: set[tuple[type[Model], str]]) -> int:
    """Delete ``rows`` in one DELETE when nothing else needs them loaded; returns the count.

    Django's ``delete()`` takes that fast path only for models nothing points to, so it would
    load these rows to cascade to relations already emptied. A relation it does not know of
    (a host's foreign key to the model) or a delete signal receiver still gets the collector.
    """
    model = rows.model
    if _needs_collector(model, handled):
        return rows.delete()[0]
    return rows._raw_delete(rows.db)


def _needs_collector(model: type[Model], handled: set[tuple[type[Model], str]]) -> bool:
    if signals.pre_delete.has_listeners(model) or signals.post_delete.has_listeners(model):
        return True
    return any(
        (relation.related_model, relation.field.name) not in handled
        and relation.on_delete is not DO_NOTHING
        for relation in model._meta.get_fields(include_hidden=True)
        if relation.auto_created
        and not relation.concrete
        and (relation.one_to_many or relation.one_to_one)
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
