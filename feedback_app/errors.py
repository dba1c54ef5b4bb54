"""Validation errors that name their field and keep a stable code (the REST API shows both)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def field_error(field: str, message: str, code: str = "invalid") -> ValidationError:
    # The code goes on the inner error: Django drops a code given beside a dict of messages.
    return ValidationError({field: ValidationError(message, code=code)})


class SendBlocked(Exception):
    """The guard refused a send before any provider call (docs/guard.md).

    ``code`` is stable (``recipient_rate``, ``prefix_blocked``, ...); ``retry_after`` is the
    seconds until a rate limit's window ends, or None for a block or a country rule;
    ``block_id`` the ``GuardBlock`` that refused it, if one did.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        block_id: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.block_id = block_id

    @property
    def is_rate_limit(self) -> bool:
        """True for a limit that lifts by itself (API: 429), False for a block (API: 403)."""
        return self.retry_after is not None
