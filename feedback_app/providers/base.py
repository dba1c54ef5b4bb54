"""The provider interface, its two errors, and the registry that builds backends from settings.

A backend raises only ``RetryableError`` or ``PermanentError``; the outbox decides what to do.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from django.core.checks import CheckMessage
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.urls import reverse
from django.utils.module_loading import import_string

from ..conf import BUILTIN_BACKENDS, app_settings
from ..recipients import mask_numbers_in
from ..states import Delivery

if TYPE_CHECKING:
    from ..models import Message


class ProviderError(Exception):
    """A provider call did not succeed. ``code`` and ``message`` are the provider's own, but
    for the numbers the message quotes, which are masked: it is logged and stored."""

    def __init__(self, message: str = "", *, code: str | int | None = None) -> None:
        message = mask_numbers_in(str(message))
        super().__init__(message)
        self.message = message
        self.code = "" if code is None else str(code)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}" if self.code else self.message


class RetryableError(ProviderError):
    """Throttling, timeouts, 5xx: try again later."""


class PermanentError(ProviderError):
    """Validation, auth, not found: trying again will not help."""


@dataclass(frozen=True)
class SendResult:
    provider_message_id: str
    #: Normalized status (``states.Delivery``) and the provider's raw one.
    delivery_status: str = Delivery.QUEUED
    provider_status: str = ""
    #: The sender the provider used, when the caller let it choose.
    sender: str = ""
    #: Provider facts needed later (e.g. the Chime channel to poll); merged into
    #: ``Message.metadata``. Never the body or a clear phone number.
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StatusUpdate:
    """A delivery status read from a provider (webhook or poll), already normalized."""

    provider_message_id: str
    delivery_status: str
    provider_status: str = ""
    at: datetime | None = None
    #: Provider facts worth keeping beside the event (error code, carrier, is-final flag...).
    detail: dict[str, Any] = field(default_factory=dict)
    #: Raw provider statuses this one refines at the same delivery status (AWS's
    #: ``TEXT_DELIVERED`` after ``TEXT_SUCCESSFUL``): see ``services.record_delivery``.
    supersedes: frozenset[str] = frozenset()
    #: Our public message id, when the provider echoes it (AWS's ``Context``): finds the message
    #: when ``provider_message_id`` does not.
    message_id: str | None = None


class Provider:
    """Base class of provider backends. One instance per key and process."""

    #: Conversion outcomes this provider accepts reports for: "confirmed", "failed", and
    #: "superseded" for a provider with a value of its own for a message whose verification
    #: converted through another one (returned by ``superseded_outcome``). An outcome it does
    #: not accept is recorded locally only.
    reports: ClassVar[frozenset[str]] = frozenset()
    #: Delivery statuses worth polling the provider about (empty: this provider is not polled).
    poll_statuses: ClassVar[frozenset[str]] = frozenset()
    #: Delivery statuses that may be the last one a provider sends unasked (no receipt from the
    #: carrier); ``manage.py feedback_sync`` fetches them once they are SYNC_STALE_AFTER old.
    sync_statuses: ClassVar[frozenset[str]] = frozenset()
    #: Channels this provider sends (``states.Channel`` values); None: any, the API does not check.
    channels: ClassVar[frozenset[str] | None] = None

    def __init__(self, key: str, config: dict[str, Any]) -> None:
        self.key = key
        self.config = config

    @classmethod
    def check_config(cls, key: str, config: dict[str, Any]) -> list[CheckMessage]:
        """System-check messages for this backend's settings (``manage.py check``)."""
        return []

    def send(
        self,
        *,
        to: str,
        body: str,
        sender: str | None,
        channel: str,
        message_id: str,
        **options: Any,
    ) -> SendResult:
        """Send ``body`` to ``to`` with feedback enabled; ``message_id`` is our public id."""
        raise NotImplementedError

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        """Tell the provider the conversion outcome of one message."""
        raise PermanentError(f"{self.key} does not accept feedback", code="unsupported")

    def superseded_outcome(self, message: Message) -> str | None:
        """The outcome to report for ``message`` once another message of its verification (a
        resend) was confirmed, as this provider advises; None: report nothing.

        Called in the confirmation's transaction with the message as stored (delivery status
        included). The outcome must be one of ``reports`` to be sent: "failed", or "superseded"
        where the provider has such a value (Plivo's ``CONVERTED_WITH_OTHERS``).
        """
        return None

    def fetch_status(self, message: Message) -> StatusUpdate | None:
        """Ask the provider for the message's current status; None when it cannot tell."""
        return None


_lock = threading.Lock()
_instances: dict[str, Provider] = {}


def provider_keys() -> list[str]:
    return list(app_settings.PROVIDERS)


def backend_path(key: str, config: dict[str, Any]) -> str:
    path = config.get("BACKEND") or BUILTIN_BACKENDS.get(key)
    if not path:
        raise ImproperlyConfigured(f"FEEDBACK_APP['PROVIDERS'][{key!r}] names no BACKEND")
    return path


def get_provider(key: str) -> Provider:
    """The backend for ``key``, built once per process from settings.

    Raises ``KeyError`` for a key that is not configured.
    """
    instance = _instances.get(key)
    if instance is None:
        with _lock:
            instance = _instances.get(key)
            if instance is None:
                config = app_settings.PROVIDERS[key]
                backend = import_string(backend_path(key, config))
                instance = _instances[key] = backend(key, config)
    return instance


def webhook_url(webhook: str, key: str, builtin_key: str | None = None) -> str | None:
    """The URL of ``key``'s ``webhook`` under ``PUBLIC_URL``: ``webhooks/<webhook>/`` for the
    built-in key (``builtin_key``, the webhook's own name by default), ``webhooks/<webhook>/<key>/``
    for another key with the same backend; None without ``PUBLIC_URL``. Where a provider asks a
    vendor to call back, and where a fake plays a vendor's account-level callback setting."""
    if not app_settings.PUBLIC_URL:
        return None
    if key == (builtin_key or webhook):
        path = reverse(f"feedback_app:webhook-{webhook}")
    else:
        path = reverse(f"feedback_app:webhook-{webhook}-key", kwargs={"provider": key})
    return app_settings.PUBLIC_URL.rstrip("/") + path


def reporting_providers(outcome: str) -> list[str]:
    """Configured provider keys that accept reports of ``outcome``."""
    return [key for key in provider_keys() if outcome in get_provider(key).reports]


def reset_providers() -> None:
    with _lock:
        _instances.clear()


def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "FEEDBACK_APP":
        reset_providers()


setting_changed.connect(_reset)
