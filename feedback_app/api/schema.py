"""The OpenAPI 3 schema of the API (drf-spectacular) and its offline docs page.

The schema covers this app's API only, whatever else the host project serves, and is built
with the app's own settings, so it does not depend on the host's ``SPECTACULAR_SETTINGS``.
The docs page loads Swagger UI from drf-spectacular-sidecar's static files: no CDN.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.renderers import OpenApiJsonRenderer
from drf_spectacular.settings import patched_settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.request import Request
from rest_framework.response import Response

from .. import __version__
from .idempotency import HEADER, KEY_PATTERN, MAX_KEY_LENGTH, REPLAYED_HEADER
from .permissions import CanUseTheAPI
from .serializers import ErrorSerializer

F = TypeVar("F", bound=Callable[..., Any])

SCHEMA_SETTINGS: dict[str, Any] = {
    "TITLE": "feedback_app API",
    "DESCRIPTION": (
        "Track OTP and other messages, send them through a provider, confirm conversions and "
        "read the conversion report. Errors are JSON objects with a stable `code`, a `detail` "
        "for people and per-field errors in `fields`."
    ),
    "VERSION": __version__,
    # Separate request and response components: write-only fields (to, body) appear only in
    # requests, read-only ones only in responses.
    "COMPONENT_SPLIT_REQUEST": True,
    "PREPROCESSING_HOOKS": ["feedback_app.api.schema.only_this_api"],
    # Same choices under several field names: one component each.
    "ENUM_NAME_OVERRIDES": {
        "ChannelEnum": "feedback_app.states.Channel",
        "DeliveryStatusEnum": "feedback_app.states.Delivery",
        "FeedbackEnum": "feedback_app.states.Feedback",
        "BreakdownEnum": "feedback_app.reports.BREAKDOWNS",
    },
    # Swagger UI must not fetch its online validator badge: the page works offline.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
}

_ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Invalid request: malformed JSON, wrong type, unknown value, bad header. "
    "Nothing was written.",
    401: "Not authenticated (see the WWW-Authenticate header).",
    403: "Authenticated without the permission this endpoint needs (whatever the id).",
    404: "No such message (or a bad cursor).",
    406: "The Accept header allows no type this API answers with (application/json).",
    409: "A request with this Idempotency-Key is still running.",
    413: "The request body is larger than the site's DATA_UPLOAD_MAX_MEMORY_SIZE.",
    415: "The body is not application/json.",
    422: "This Idempotency-Key was used with a different body.",
    429: "Throttled: by the endpoint's scope (feedback_app.send, feedback_app.confirm) or, "
    "on endpoints without one, by the host's DEFAULT_THROTTLE_CLASSES. See Retry-After.",
    502: "The provider refused the message (permanent error). Nothing was written.",
    503: "The provider is unavailable (retryable error). Nothing was written.",
}


#: The send endpoint's 403 and 429: its permission and throttle, or the guard (docs/guard.md).
GUARD_ERRORS: dict[int, OpenApiResponse] = {
    403: OpenApiResponse(
        ErrorSerializer,
        description="Authenticated without the `send_message` permission, or the guard refused "
        "the destination: `code` is `prefix_blocked` (a blocked prefix, suspected SMS pumping), "
        "`country_blocked` or `country_not_allowed` (the purpose's country lists). Nothing "
        "was sent.",
    ),
    429: OpenApiResponse(
        ErrorSerializer,
        description="Throttled by the `feedback_app.send` scope (`code` `throttled`), or a "
        "guard rate limit: `code` is `recipient_rate`, `verification_rate`, `client_rate`, "
        "`prefix_rate` or `country_rate`. Nothing was sent. See Retry-After.",
    ),
}


def errors(*statuses: int) -> dict[int, OpenApiResponse]:
    """Error responses for ``extend_schema(responses=...)``."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=_ERROR_DESCRIPTIONS[code])
        for code in statuses
    }


#: Response headers of the errors that carry one (401, 429).
ERROR_HEADERS = [
    OpenApiParameter(
        "WWW-Authenticate",
        str,
        OpenApiParameter.HEADER,
        response=[401],
        description="The authentication scheme to use (`Token`), when the host's first "
        "authentication class names one.",
    ),
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        response=[429],
        description="Seconds to wait before trying again.",
    ),
]

#: Response headers of a 201 from track or send.
CREATED_HEADERS = [
    OpenApiParameter(
        REPLAYED_HEADER,
        {"type": "string", "enum": ["true"]},
        OpenApiParameter.HEADER,
        response=[201],
        description="Present on a replay: the first response to this Idempotency-Key, sent "
        "again; nothing was written or sent this time.",
    ),
]

IDEMPOTENCY_KEY = OpenApiParameter(
    HEADER,
    {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH, "pattern": KEY_PATTERN},
    OpenApiParameter.HEADER,
    description=(
        "Makes retries safe: a repeat with the same key and body returns the first response "
        f"(with `{REPLAYED_HEADER}: true`) without running again."
    ),
)


def only_this_api(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: keep the endpoints of ``feedback_app.api.views``."""
    return [
        endpoint
        for endpoint in endpoints
        if getattr(getattr(endpoint[3], "cls", None), "__module__", "") == "feedback_app.api.views"
    ]


def documented(**kwargs: Any) -> Callable[[F], F]:
    """``extend_schema`` for a view method, built on drf-spectacular's AutoSchema.

    ``extend_schema`` builds on the method's own schema if it has one, else on DRF's
    DEFAULT_SCHEMA_CLASS as it is at import; a host that leaves that unset (DRF's own
    AutoSchema) would get a schema view that fails. Naming ours first makes it independent.
    """
    decorate = extend_schema(**kwargs)

    def decorator(method: F) -> F:
        context = getattr(method, "kwargs", None)
        if context is None:
            method.kwargs = context = {}  # type: ignore[attr-defined]
        context.setdefault("schema", AutoSchema)
        return decorate(method)

    return decorator


def openapi_schema() -> dict[str, Any]:
    """The schema ``api/schema/`` serves, as plain JSON data, without a request.

    For tools (code generators, schemathesis) and for checking the schema in CI.
    """
    with patched_settings(SCHEMA_SETTINGS):
        schema = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(schema))


class SchemaView(SpectacularAPIView):
    """``GET api/schema/``: OpenAPI 3, YAML or JSON by content negotiation (``?format=json``)."""

    permission_classes = [CanUseTheAPI]
    custom_settings = SCHEMA_SETTINGS


class DocsView(SpectacularSwaggerView):
    """``GET api/docs/``: Swagger UI from local static files."""

    permission_classes = [CanUseTheAPI]
    url_name = "feedback_app:api-schema"
    title = SCHEMA_SETTINGS["TITLE"]

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        with patched_settings(SCHEMA_SETTINGS):
            return super().get(request, *args, **kwargs)
