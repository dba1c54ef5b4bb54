"""feedback_app: track OTP messages, their delivery and conversion, and report conversions back
to the provider.

The public Python API is re-exported here lazily, so importing the package does not load models
before Django is set up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["confirm", "confirmation_token", "fail", "send", "track"]

if TYPE_CHECKING:
    from .services import confirm, fail, send, track
    from .tokens import confirmation_token


def __getattr__(name: str) -> Any:
    if name == "confirmation_token":
        from . import tokens

        return tokens.confirmation_token
    if name in __all__:
        from . import services

        return getattr(services, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
