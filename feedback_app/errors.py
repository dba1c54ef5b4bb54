"""Validation errors that name their field and keep a stable code (the REST API shows both)."""

from __future__ import annotations

from django.core.exceptions import ValidationError


def field_error(field: str, message: str, code: str = "invalid") -> ValidationError:
    # The code goes on the inner error: Django drops a code given beside a dict of messages.
    return ValidationError({field: ValidationError(message, code=code)})
