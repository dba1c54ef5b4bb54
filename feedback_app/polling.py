"""Polling providers for statuses still open (Chime channel flows leave messages PENDING).

Webhooks are the normal path; this covers providers that have none. Each answer goes through
``services.record_delivery``, so rank merging applies as for webhooks.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from . import services
from .conf import app_settings
from .models import Message
from .providers.base import ProviderError, get_provider, provider_keys
from .states import Source

logger = logging.getLogger(__name__)


def open_messages(now: datetime) -> list[Message]:
    """Messages of polled providers, in an open status, sent within POLL_MAX_AGE."""
    since = now - timedelta(seconds=app_settings.POLL_MAX_AGE)
    found: list[Message] = []
    for key in provider_keys():
        statuses = get_provider(key).poll_statuses
        if not statuses:
            continue
        found += Message.objects.filter(
            provider=key, delivery_status__in=statuses, sent_at__gte=since
        ).order_by("sent_at")[: app_settings.POLL_BATCH]
    return found


def poll_open_statuses(now: datetime | None = None) -> int:
    """Poll each open message once; returns how many changed status."""
    now = now or timezone.now()
    changed = 0
    for message in open_messages(now):
        try:
            update = get_provider(message.provider).fetch_status(message)
        except ProviderError as exc:
            logger.warning("feedback_app: polling %s failed: %s", message.pk, exc)
            continue
        if update is None:
            continue
        try:
            changed += services.record_delivery(
                message,
                update.delivery_status,
                provider_status=update.provider_status,
                at=update.at,
                source=Source.POLL,
                detail=update.detail,
            )
        except Message.DoesNotExist:
            # Deleted (a retention job, the admin) while the provider was being asked.
            continue
    return changed
