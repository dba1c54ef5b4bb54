"""Polling providers for statuses still open (Chime channel flows leave messages PENDING).

Webhooks are the normal path; this covers providers that have none, and (``sync_statuses``, run
by ``manage.py feedback_sync``) statuses a webhook may never move on, such as Twilio's ``sent``
when the carrier returns no receipt. Each answer goes through ``services.record_delivery``, so
rank merging applies as for webhooks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q, QuerySet
from django.utils import timezone

from . import services
from .conf import app_settings
from .models import Message
from .providers.base import ProviderError, get_provider, provider_keys
from .states import Source

logger = logging.getLogger(__name__)


def open_messages(now: datetime) -> list[Message]:
    """Messages of polled providers, in an open status, sent within POLL_MAX_AGE: at most
    POLL_BATCH per provider, the least recently polled first (never polled before any other).

    Least recently polled rather than oldest: with oldest first, POLL_BATCH messages that never
    settle would be the only ones asked about until they reach POLL_MAX_AGE.
    """
    since = now - timedelta(seconds=app_settings.POLL_MAX_AGE)
    found: list[Message] = []
    for key in provider_keys():
        statuses = get_provider(key).poll_statuses
        if not statuses:
            continue
        found += Message.objects.filter(
            provider=key, delivery_status__in=statuses, sent_at__gte=since
        ).order_by(F("polled_at").asc(nulls_first=True), "sent_at", "pk")[: app_settings.POLL_BATCH]
    return found


def poll_open_statuses(now: datetime | None = None) -> int:
    """Poll each open message once; returns how many changed status."""
    now = now or timezone.now()
    messages = open_messages(now)
    # Marked before asking, so a run that dies midway still moves its batch to the back.
    Message.objects.filter(pk__in=[message.pk for message in messages]).update(polled_at=now)
    return sum(_poll(message) is True for message in messages)


def _poll(message: Message) -> bool | None:
    """Ask about one message: True if its status changed, False if not, None on an error."""
    try:
        update = get_provider(message.provider).fetch_status(message)
    except ProviderError as exc:
        logger.warning("feedback_app: polling %s failed: %s", message.pk, exc)
        return None
    if update is None:
        return False
    try:
        return services.record_delivery(
            message,
            update.delivery_status,
            provider_status=update.provider_status,
            at=update.at,
            source=Source.POLL,
            detail=update.detail,
            supersedes=update.supersedes,
        )
    except Message.DoesNotExist:
        # Deleted (a retention job, the admin) while the provider was being asked.
        return False


@dataclass(frozen=True)
class SyncResult:
    #: Messages asked about, of which ``changed`` moved on and ``errors`` got a provider error.
    checked: int
    changed: int
    errors: int


def sync_candidates(now: datetime) -> QuerySet[Message]:
    """Every message a sync asks about, oldest first.

    Open statuses of polled providers sent within POLL_MAX_AGE (what the schedule polls), and
    messages still in one of a provider's ``sync_statuses`` SYNC_STALE_AFTER after sending,
    sent within SYNC_MAX_AGE.
    """
    polled = timedelta(seconds=app_settings.POLL_MAX_AGE)
    stale_after = timedelta(seconds=app_settings.SYNC_STALE_AFTER)
    max_age = timedelta(seconds=app_settings.SYNC_MAX_AGE)
    wanted = Q()
    for key in provider_keys():
        provider = get_provider(key)
        if provider.poll_statuses:
            wanted |= Q(
                provider=key, delivery_status__in=provider.poll_statuses, sent_at__gte=now - polled
            )
        if provider.sync_statuses:
            wanted |= Q(
                provider=key,
                delivery_status__in=provider.sync_statuses,
                sent_at__lte=now - stale_after,
                sent_at__gte=now - max_age,
            )
    if not wanted:
        return Message.objects.none()
    return Message.objects.filter(wanted).order_by("sent_at", "pk")


def sync_statuses(
    now: datetime | None = None,
    *,
    limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SyncResult:
    """Ask providers about every ``sync_candidates`` message (at most ``limit``) once.

    ``progress(done, total)`` is called after each batch of POLL_BATCH messages.
    """
    now = now or timezone.now()
    ids = list(sync_candidates(now).values_list("pk", flat=True)[:limit])
    checked = changed = errors = 0
    batch = max(1, int(app_settings.POLL_BATCH))
    for start in range(0, len(ids), batch):
        chunk = Message.objects.filter(pk__in=ids[start : start + batch]).order_by("sent_at", "pk")
        for message in chunk:
            outcome = _poll(message)
            checked += 1
            changed += outcome is True
            errors += outcome is None
        if progress is not None:
            progress(checked, len(ids))
    return SyncResult(checked=checked, changed=changed, errors=errors)
