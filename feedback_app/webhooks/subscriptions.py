"""SNS subscription confirmations: recorded when SNS sends one to the webhook, confirmed by a GET
of their SubscribeURL, by the webhook itself (``SNS_CONFIRM_SUBSCRIPTIONS``) or from the admin.

The only code that writes ``SnsSubscription`` rows. The SubscribeURL is checked again before each
GET, the same way on both paths (``check_subscribe_url``).
"""

from __future__ import annotations

import logging
import urllib.error
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from ..models import SnsSubscription
from ..services import actor_name

logger = logging.getLogger(__name__)


class SubscriptionError(Exception):
    """The subscription was not confirmed. ``retryable``: SNS or the network may answer later."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable


def check_subscribe_url(url: object, topic_arn: str) -> str:
    """``url`` if it is an SNS ``ConfirmSubscription`` URL for ``topic_arn``, else raise
    ``SubscriptionError``.

    Only ``https://sns.<region>.amazonaws.com[.cn]/`` (``sns_signature.is_sns_url``), and only the
    one action: any other GET on SNS (an Unsubscribe URL, say) is not ours to make.
    """
    from . import sns_signature

    if not sns_signature.is_sns_url(url):
        raise SubscriptionError(f"SubscribeURL is not an SNS URL: {url!r}")
    query = parse_qs(urlsplit(str(url)).query)
    if query.get("Action") != ["ConfirmSubscription"]:
        raise SubscriptionError(f"SubscribeURL is not a ConfirmSubscription URL: {url!r}")
    if query.get("TopicArn") != [topic_arn]:
        raise SubscriptionError(f"SubscribeURL names another topic than {topic_arn}")
    return str(url)


def record(provider: str, envelope: dict[str, Any]) -> SnsSubscription:
    """The row of a verified SubscriptionConfirmation, created on first receipt.

    SNS sends a request again under the same MessageId; that finds the same row.
    """
    subscription, _ = SnsSubscription.objects.get_or_create(
        provider=provider,
        sns_message_id=envelope["MessageId"],
        defaults={
            "topic_arn": envelope["TopicArn"],
            "subscribe_url": envelope["SubscribeURL"],
            "received_at": timezone.now(),
        },
    )
    return subscription


def confirm(subscription: SnsSubscription, *, actor: object = None) -> bool:
    """GET the subscription's SubscribeURL and record it confirmed.

    True when this call confirmed it, False when it already was (nothing is fetched). Raises
    ``SubscriptionError`` for a URL that is not SNS's, or when SNS refuses or cannot be reached
    (the token of a request expires after three days: subscribe again).
    """
    if subscription.confirmed_at is not None:
        return False
    from . import sns_signature

    url = check_subscribe_url(subscription.subscribe_url, subscription.topic_arn)
    try:
        sns_signature.fetch(url)
    except urllib.error.HTTPError as exc:
        raise SubscriptionError(
            f"SNS refused the confirmation (HTTP {exc.code}); if the request is older than three "
            "days, subscribe again",
            retryable=exc.code >= 500 or exc.code == 429,
        ) from exc
    except OSError as exc:
        raise SubscriptionError(f"could not reach SNS: {exc}", retryable=True) from exc
    now = timezone.now()
    # Conditional: two people confirming at once record one confirmation.
    changed = SnsSubscription.objects.filter(pk=subscription.pk, confirmed_at__isnull=True).update(
        confirmed_at=now, confirmed_by=actor_name(actor)
    )
    subscription.refresh_from_db(fields=["confirmed_at", "confirmed_by"])
    if changed:
        logger.info(
            "feedback_app: confirmed the SNS subscription of %s to %s",
            subscription.provider,
            subscription.topic_arn,
        )
    return bool(changed)
