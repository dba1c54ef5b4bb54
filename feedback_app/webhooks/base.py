"""What every provider webhook shares: CSRF exemption, no login (``LoginRequiredMiddleware``),
POST only, the provider lookup, parsing the body, error responses, and applying parsed status
updates through ``services``.

A provider module implements ``validate_request`` (authenticity) and ``parse_updates``. A body
that cannot be parsed is a 400, however deep it nests: a JSON one read with ``json_body``, a form
read from ``request.POST`` (Django answers 400 itself to a form it cannot parse).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.csrf import csrf_exempt

from .. import services
from ..conf import app_settings
from ..models import Message
from ..providers.base import StatusUpdate
from ..states import Source

logger = logging.getLogger(__name__)


class WebhookError(Exception):
    """Refuse the request with ``status`` (and headers, e.g. a 401 challenge); nothing changes.

    ``reason`` is the answer's body; ``detail`` is logged only: what went wrong inside (a host
    name, an errno) is for the site's logs, not for whoever made the request.
    """

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str] | None = None,
        *,
        detail: str = "",
    ) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.detail = detail


def json_body(request: HttpRequest) -> Any:
    """The request body parsed as JSON; ``WebhookError`` 400 for any body that is not.

    ``RecursionError`` too: ``json.loads`` recurses once per nesting level, so a body nested
    some thousands deep is refused like any other unparseable one.
    """
    try:
        return json.loads(request.body)
    except (ValueError, RecursionError) as exc:
        raise WebhookError(400, "body is not JSON") from exc


def find_message(provider: str, update: StatusUpdate) -> Message | None:
    """The message an update is about: by the provider's message id, else by our own id when the
    provider echoed it (``update.message_id``); None when the app has no such message."""
    message = Message.objects.filter(
        provider=provider, provider_message_id=update.provider_message_id
    ).first()
    if message is None and update.message_id:
        try:
            pk = uuid.UUID(update.message_id)
        except ValueError:
            return None
        message = Message.objects.filter(provider=provider, pk=pk).first()
    return message


def apply_update(provider: str, update: StatusUpdate, message: Message | None = None) -> bool:
    """Record a status update through ``services``; True when the delivery status changed.

    ``message``: the one ``find_message`` just found for it, if the caller looked it up already.
    A message the app has no row for is ignored: not sent through the app, purged, or sent so
    recently that its row is not committed yet (docs/webhooks.md, "Early events").
    """
    if message is None:
        message = find_message(provider, update)
    if message is None:
        logger.info("feedback_app: %s webhook for an unknown message, ignored", provider)
        return False
    try:
        return services.record_delivery(
            message,
            update.delivery_status,
            provider_status=update.provider_status,
            at=update.at,
            source=Source.WEBHOOK,
            detail=update.detail,
            supersedes=update.supersedes,
        )
    except Message.DoesNotExist:
        # Deleted (retention, the admin) since it was found.
        return False


def public_url(request: HttpRequest) -> str:
    """The URL the provider called: PUBLIC_URL + path behind a proxy, else the request's own."""
    base = app_settings.PUBLIC_URL
    if base:
        return base.rstrip("/") + request.get_full_path()
    return request.build_absolute_uri()


# Providers call without a session or CSRF token: their own signature authenticates them.
@method_decorator([csrf_exempt, login_not_required], name="dispatch")
class WebhookView(View):
    http_method_names = ["post"]
    #: Provider key used when the URL names none.
    default_provider: str = ""

    def post(self, request: HttpRequest, provider: str | None = None) -> HttpResponse:
        key = provider or self.default_provider
        config = app_settings.PROVIDERS.get(key)
        if config is None:
            return HttpResponse(status=404)
        try:
            self.validate_request(request, key, config)
            updates = list(self.parse_updates(request, key, config))
        except WebhookError as exc:
            logger.warning(
                "feedback_app: %s webhook refused: %s%s",
                key,
                exc.reason,
                f" ({exc.detail})" if exc.detail else "",
            )
            response = HttpResponse(exc.reason, status=exc.status, content_type="text/plain")
            for name, value in exc.headers.items():
                response[name] = value
            return response
        for update in updates:
            self.apply(key, update)
        return self.success_response()

    def apply(self, provider: str, update: StatusUpdate) -> None:
        """Apply one parsed update; a view that found its message already passes it on."""
        apply_update(provider, update)

    def validate_request(self, request: HttpRequest, provider: str, config: dict[str, Any]) -> None:
        """Raise ``WebhookError`` unless the request provably comes from the provider."""
        raise NotImplementedError

    def parse_updates(
        self, request: HttpRequest, provider: str, config: dict[str, Any]
    ) -> Iterable[StatusUpdate]:
        raise NotImplementedError

    def success_response(self) -> HttpResponse:
        return HttpResponse(status=200)
