"""Rate limits per endpoint group: ``feedback_app.send`` and ``feedback_app.confirm``.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` like any DRF scope; a scope the
host did not list gets the default below instead of DRF's ImproperlyConfigured (a 500), and
``None`` turns it off. Counted per user, or per client address for anonymous callers.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.http import HttpRequest
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle


class ScopeRateThrottle(SimpleRateThrottle):
    scope: ClassVar[str]
    default_rate: ClassVar[str | None]

    def get_rate(self) -> str | None:
        # Read on each use, not at import, so a host (or a test) can change the rates.
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope, self.default_rate)

    def get_cache_key(self, request: HttpRequest, view: Any) -> str:
        user = getattr(request, "user", None)
        ident = user.pk if user is not None and user.is_authenticated else self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class SendThrottle(ScopeRateThrottle):
    """Sending costs money and is what SMS pumping abuses."""

    scope = "feedback_app.send"
    default_rate = "120/minute"


class ConfirmThrottle(ScopeRateThrottle):
    """Confirm and fail, by id, by provider id, by token and by link."""

    scope = "feedback_app.confirm"
    default_rate = "600/minute"
