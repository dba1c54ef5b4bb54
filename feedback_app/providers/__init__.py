"""Provider backends behind one interface; see ``base.py``."""

from .base import (
    PermanentError,
    Provider,
    ProviderError,
    RetryableError,
    SendResult,
    StatusUpdate,
    get_provider,
    provider_keys,
)

__all__ = [
    "PermanentError",
    "Provider",
    "ProviderError",
    "RetryableError",
    "SendResult",
    "StatusUpdate",
    "get_provider",
    "provider_keys",
]
