"""Admin: read-only views of messages and calls; actions go through services and the outbox."""

from .dashboard import ConversionDashboardAdmin
from .guard import BlockedSendAdmin, GuardBlockAdmin
from .messages import MessageAdmin, ProviderCallAdmin
from .subscriptions import SnsSubscriptionAdmin  # noqa: F401 (registers it)
from .verifications import VerificationAdmin  # noqa: F401 (registers it)

__all__ = [
    "BlockedSendAdmin",
    "ConversionDashboardAdmin",
    "GuardBlockAdmin",
    "MessageAdmin",
    "ProviderCallAdmin",
]
