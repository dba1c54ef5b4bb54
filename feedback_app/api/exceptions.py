"""Error responses of the API: every error is JSON ``{"code", "detail", "fields"}``.

``code`` is stable (clients branch on it), ``detail`` is for people, ``fields`` maps each
request field to its errors. The services' and providers' exceptions are mapped here, once.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ObjectDoesNotExist, RequestDataTooBig
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions, status
from rest_framework.exceptions import ErrorDetail
from rest_framework.fields import get_error_detail
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from ..errors import SendBlocked
from ..providers.base import PermanentError, RetryableError

logger = logging.getLogger(__name__)

NON_FIELD = api_settings.NON_FIELD_ERRORS_KEY


class ProviderUnavailable(exceptions.APIException):
    """The provider is throttling, timing out or failing (``RetryableError``): try later."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = _("The provider is unavailable; nothing was sent. Try again later.")
    default_code = "provider_unavailable"


class ProviderRejected(exceptions.APIException):
    """The provider refused the call (``PermanentError``); the same request will fail again.

    502, not 400: the request was valid for this API and the provider's reasons (credentials,
    account limits, a number it will not serve) are mostly not the caller's to fix.
    """

    status_code = status.HTTP_502_BAD_GATEWAY
    default_detail = _("The provider refused the message; nothing was sent.")
    default_code = "provider_rejected"


class RequestTooLarge(exceptions.APIException):
    """The body is over Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``; it was not read."""

    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = _("The request body is too large.")
    default_code = "request_too_large"


class InvalidConfirmationToken(exceptions.APIException):
    """Bad, foreign or tampered (``invalid_token``) or past its window (``token_expired``)."""

    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = _("This confirmation token is not valid.")
    default_code = "invalid_token"


class IdempotencyKeyInUse(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = _("A request with this Idempotency-Key is still being processed.")
    default_code = "idempotency_key_in_use"


class IdempotencyKeyReused(exceptions.APIException):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    default_detail = _("This Idempotency-Key was used with a different request body.")
    default_code = "idempotency_key_reused"


class SendRateLimited(exceptions.Throttled):
    """A guard rate limit refused the send (``recipient_rate``, ...): 429 with Retry-After."""

    default_code = "rate_limited"


def _guard_refusal(exc: SendBlocked) -> exceptions.APIException:
    """429 for a rate limit (it lifts by itself), 403 for a block or a country rule."""
    if exc.is_rate_limit:
        return SendRateLimited(wait=exc.retry_after, detail=exc.message, code=exc.code)
    return exceptions.PermissionDenied(detail=exc.message, code=exc.code)


def _as_api_exception(exc: Exception) -> Exception:
    """The services' exceptions as the API exceptions that say the same thing."""
    if isinstance(exc, DjangoValidationError):
        detail = get_error_detail(exc)
        if isinstance(detail, dict):
            detail = {NON_FIELD if k == NON_FIELD_ERRORS else k: v for k, v in detail.items()}
        return exceptions.ValidationError(detail)
    if isinstance(exc, ObjectDoesNotExist | Http404):
        # One answer for "no such message" and "not yours to see".
        return exceptions.NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return exceptions.PermissionDenied()
    if isinstance(exc, RequestDataTooBig):
        # Raised when DRF reads the body for the JSON parser; Django would answer an HTML 400.
        return RequestTooLarge()
    if isinstance(exc, SendBlocked):
        return _guard_refusal(exc)
    if isinstance(exc, RetryableError):
        logger.warning("provider unavailable: %s", exc)
        return ProviderUnavailable()
    if isinstance(exc, PermanentError):
        # The provider's message may name accounts or credentials: logged, not returned.
        logger.warning("provider refused: %s", exc)
        detail = ProviderRejected.default_detail
        if exc.code:
            detail = _("The provider refused the message (provider code %(code)s).") % {
                "code": exc.code
            }
        return ProviderRejected(detail)
    return exc


def _flatten(detail: Any, prefix: str = "") -> dict[str, list[dict[str, str]]]:
    """DRF's nested error structure as ``{"field" or "field.0.sub": [{code, detail}]}``."""
    if isinstance(detail, dict):
        flat: dict[str, list[dict[str, str]]] = {}
        for key, value in detail.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list) and detail and not all(isinstance(d, str) for d in detail):
        flat = {}
        for index, value in enumerate(detail):
            flat.update(_flatten(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    items = detail if isinstance(detail, list) else [detail]
    errors = [
        {"code": getattr(item, "code", None) or "invalid", "detail": str(item)} for item in items
    ]
    return {prefix or NON_FIELD: errors} if errors else {}


def error_body(exc: exceptions.APIException) -> dict[str, Any]:
    """The JSON body for an API exception."""
    if isinstance(exc, exceptions.ValidationError):
        fields = _flatten(exc.detail)
        # The first problem, for people; every problem is in ``fields``.
        detail = str(_("Invalid input."))
        for name, errors in fields.items():
            if errors:
                first = errors[0]["detail"]
                detail = first if name == NON_FIELD else f"{name}: {first}"
                break
        return {"code": "invalid", "detail": detail, "fields": fields}
    detail = exc.detail
    code = getattr(detail, "code", None) if isinstance(detail, ErrorDetail) else None
    return {"code": code or exc.default_code, "detail": str(detail), "fields": {}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF exception handler for the app's views (set on the views, not in host settings)."""
    exc = _as_api_exception(exc)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        response.data = error_body(exc)
    return response
