"""API views: validate with a serializer, call the service, show the result.

No state changes here: every write is a call to ``feedback_app.services``, with
``source="api"`` and the user as the actor, exactly what the Python API does.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import translate_validation
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, extend_schema_view
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny, BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView
from rest_framework.viewsets import GenericViewSet

from .. import services
from ..models import Message
from ..reports import ReportFilters, conversion_report, data_as_of
from ..states import Source
from ..tokens import ExpiredToken, InvalidToken, message_from_token
from . import permissions, serializers
from .exceptions import InvalidConfirmationToken, exception_handler
from .filters import MessageFilter
from .idempotency import idempotent
from .pagination import MessageCursorPagination
from .parsers import JSONParser
from .schema import (
    CREATED_HEADERS,
    ERROR_HEADERS,
    GUARD_ERRORS,
    IDEMPOTENCY_KEY,
    documented,
    errors,
)
from .throttling import ConfirmThrottle, SendThrottle


def _client(request: Request) -> str:
    """Who asked, for the guard's per-client limit: the user, else the address DRF's throttles
    use (``NUM_PROXIES`` decides whether X-Forwarded-For is trusted)."""
    if request.user and request.user.is_authenticated:
        return f"user:{request.user.pk}"
    return f"ip:{BaseThrottle().get_ident(request)}"


class FeedbackAPIView:
    """What every view of the API shares, whatever the host's DRF defaults are."""

    parser_classes = [JSONParser]
    # JSON only, as the schema says, whatever the host's DEFAULT_RENDERER_CLASSES (DRF's
    # default adds the browsable HTML API; a host's camelCase renderer would change the wire).
    renderer_classes = [JSONRenderer]
    # drf-spectacular's, whatever the host's DEFAULT_SCHEMA_CLASS: DRF's own cannot build
    # this schema (api/schema/ would fail).
    schema = AutoSchema()

    def get_exception_handler(self) -> Any:
        return exception_handler


@extend_schema_view(
    list=documented(
        operation_id="messages_list",
        summary="List messages, newest first",
        parameters=ERROR_HEADERS,
        responses={
            200: serializers.MessageSerializer(many=True),
            **errors(400, 401, 403, 404, 406, 429),
        },
    ),
    retrieve=documented(
        operation_id="messages_retrieve",
        summary="One message with its event history",
        parameters=ERROR_HEADERS,
        responses={
            200: serializers.MessageDetailSerializer,
            **errors(401, 403, 404, 406, 429),
        },
    ),
    create=documented(
        operation_id="messages_track",
        summary="Track a message the caller sent itself",
        description="The answer carries the message's `confirmation_token`.",
        request=serializers.TrackSerializer,
        parameters=[IDEMPOTENCY_KEY, *CREATED_HEADERS, *ERROR_HEADERS],
        responses={
            201: serializers.CreatedMessageSerializer,
            **errors(400, 401, 403, 406, 409, 413, 415, 422, 429),
        },
    ),
)
class MessageViewSet(FeedbackAPIView, GenericViewSet):
    """Messages: list, show, track, send, confirm and fail."""

    queryset = Message.objects.all()
    serializer_class = serializers.MessageSerializer
    # For anything not listed below (OPTIONS): never the host's default, which may allow all.
    permission_classes = [permissions.CanViewMessages]
    filter_backends = [DjangoFilterBackend]
    filterset_class = MessageFilter
    pagination_class = MessageCursorPagination
    # Any text, so a malformed id is the same JSON 404 as an unknown one.
    lookup_value_regex = "[^/]+"

    #: action -> permission; the extra actions name theirs in @action.
    action_permissions: dict[str, type[BasePermission]] = {
        "list": permissions.CanViewMessages,
        "retrieve": permissions.CanViewMessages,
        "create": permissions.CanTrackMessages,
    }

    def get_permissions(self) -> list[BasePermission]:
        if self.action in self.action_permissions:
            return [self.action_permissions[self.action]()]
        return super().get_permissions()

    def get_queryset(self) -> QuerySet[Message]:
        queryset = super().get_queryset()
        if self.action == "retrieve":
            queryset = queryset.prefetch_related("events")
        return queryset

    def get_object(self) -> Message:
        try:
            pk = uuid.UUID(str(self.kwargs[self.lookup_field]))
        except ValueError:
            raise exceptions.NotFound() from None
        message = get_object_or_404(self.get_queryset(), pk=pk)
        self.check_object_permissions(self.request, message)
        return message

    def _transition_response(self, message: Message, changed: bool) -> Response:
        # A user who may confirm but not view messages learns the state it set, nothing more.
        full = self.request.user.has_perm(permissions.CanViewMessages.permission)
        data = {"changed": changed, "message": message}
        return Response(serializers.TransitionResultSerializer(data, context={"full": full}).data)

    def list(self, request: Request) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response(serializers.MessageSerializer(page, many=True).data)

    def retrieve(self, request: Request, pk: str) -> Response:
        return Response(serializers.MessageDetailSerializer(self.get_object()).data)

    @idempotent
    def create(self, request: Request) -> Response:
        params = serializers.TrackSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        message = services.track(**params.validated_data, source=Source.API)
        return Response(serializers.CreatedMessageSerializer(message).data, status.HTTP_201_CREATED)

    @documented(
        operation_id="messages_send",
        summary="Send a message through a provider",
        description=(
            "The body goes to the provider and is never stored, logged or returned. `{link}` "
            "and `{token}` in it become the message's confirmation link and token; the answer "
            "carries the token as `confirmation_token`."
        ),
        request=serializers.SendSerializer,
        parameters=[IDEMPOTENCY_KEY, *CREATED_HEADERS, *ERROR_HEADERS],
        responses={
            201: serializers.CreatedMessageSerializer,
            **errors(400, 401, 406, 409, 413, 415, 422, 502, 503),
            **GUARD_ERRORS,
        },
    )
    @action(
        detail=False,
        methods=["post"],
        permission_classes=[permissions.CanSendMessages],
        throttle_classes=[SendThrottle],
    )
    @idempotent
    def send(self, request: Request) -> Response:
        params = serializers.SendSerializer(data=request.data, context={"request": request})
        params.is_valid(raise_exception=True)
        message = services.send(**params.validated_data, source=Source.API, client=_client(request))
        return Response(serializers.CreatedMessageSerializer(message).data, status.HTTP_201_CREATED)

    @documented(
        operation_id="messages_confirm",
        summary="Confirm a message (a conversion)",
        description="Confirming twice is not an error: the second answer has `changed: false`.",
        request=serializers.TransitionSerializer,
        parameters=ERROR_HEADERS,
        responses={
            200: serializers.TransitionResultSerializer,
            **errors(400, 401, 403, 404, 406, 413, 415, 429),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[permissions.CanConfirmMessages],
        throttle_classes=[ConfirmThrottle],
    )
    def confirm(self, request: Request, pk: str) -> Response:
        params = serializers.TransitionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        message = self.get_object()
        changed = services.confirm(
            message,
            at=params.validated_data.get("at"),
            source=Source.API,
            actor=request.user,
            fresh=True,  # get_object() just read it: no second read
        )
        return self._transition_response(message, changed)

    @documented(
        operation_id="messages_fail",
        summary="Record that the recipient did not use the message",
        request=serializers.TransitionSerializer,
        parameters=ERROR_HEADERS,
        responses={
            200: serializers.TransitionResultSerializer,
            **errors(400, 401, 403, 404, 406, 413, 415, 429),
        },
    )
    @action(
        detail=True,
        methods=["post"],
        permission_classes=[permissions.CanConfirmMessages],
        throttle_classes=[ConfirmThrottle],
    )
    def fail(self, request: Request, pk: str) -> Response:
        params = serializers.TransitionSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        message = self.get_object()
        changed = services.fail(
            message,
            at=params.validated_data.get("at"),
            source=Source.API,
            actor=request.user,
            fresh=True,  # get_object() just read it: no second read
        )
        return self._transition_response(message, changed)

    @documented(
        operation_id="messages_confirm_by_provider_id",
        summary="Confirm a message by the provider's id",
        request=serializers.ProviderReferenceSerializer,
        parameters=ERROR_HEADERS,
        responses={
            200: serializers.TransitionResultSerializer,
            **errors(400, 401, 403, 404, 406, 413, 415, 429),
        },
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="confirm",
        permission_classes=[permissions.CanConfirmMessages],
        throttle_classes=[ConfirmThrottle],
    )
    def confirm_by_provider_id(self, request: Request) -> Response:
        params = serializers.ProviderReferenceSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        message = get_object_or_404(
            self.get_queryset(),
            provider=data["provider"],
            provider_message_id=data["provider_message_id"],
        )
        changed = services.confirm(
            message, at=data.get("at"), source=Source.API, actor=request.user, fresh=True
        )
        return self._transition_response(message, changed)


class ConfirmTokenView(FeedbackAPIView, APIView):
    """``POST api/confirm/{token}/``: the token is the credential; no login, no CSRF."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type[BaseThrottle]] = [ConfirmThrottle]

    @documented(
        operation_id="confirm_by_token",
        summary="Confirm the message a token was made for",
        description=(
            "Needs no login: the token, from `feedback_app.confirmation_token(message)`, confirms "
            "exactly one message until its feedback window closes. Shows only the message's "
            "id and state."
        ),
        request=None,
        responses={
            200: serializers.TokenConfirmationSerializer,
            400: OpenApiResponse(
                serializers.ErrorSerializer,
                description="Bad, foreign or tampered token (`invalid_token`), or the window "
                "has closed (`token_expired`). Nothing changed.",
            ),
            **errors(404, 406, 429),
        },
        parameters=ERROR_HEADERS,
    )
    def post(self, request: Request, token: str) -> Response:
        try:
            message = message_from_token(token)
        except ExpiredToken as exc:
            raise InvalidConfirmationToken(
                "The feedback window of this message has closed.", code=exc.code
            ) from exc
        except InvalidToken as exc:
            raise InvalidConfirmationToken(code=exc.code) from exc
        changed = services.confirm(message, source=Source.API, actor="token", fresh=True)
        data = {"changed": changed, "message": message}
        return Response(serializers.TokenConfirmationSerializer(data).data)


class ReportView(FeedbackAPIView, APIView):
    """``GET api/stats/``: the conversion report, with the message list's filters."""

    permission_classes = [permissions.CanViewReport]
    filter_backends = [DjangoFilterBackend]
    filterset_class = MessageFilter
    queryset = Message.objects.all()

    def get_queryset(self) -> QuerySet[Message]:
        return self.queryset.all()

    @documented(
        operation_id="stats",
        summary="The conversion report",
        filters=True,  # the list's filters, though this is not a list
        parameters=[serializers.ReportQuerySerializer, *ERROR_HEADERS],
        responses={200: serializers.ReportSerializer, **errors(400, 401, 403, 406, 429)},
    )
    def get(self, request: Request) -> Response:
        query = serializers.ReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        filterset = MessageFilter(request.query_params, queryset=self.get_queryset())
        if not filterset.is_valid():
            raise translate_validation(filterset.errors)
        report = conversion_report(
            ReportFilters.from_mapping(filterset.form.cleaned_data),
            by=query.validated_data.get("by"),
            queryset=self.get_queryset(),
        )
        data = {**vars(report), "data_as_of": data_as_of()}
        return Response(serializers.ReportSerializer(data).data)


class NotFoundView(FeedbackAPIView, APIView):
    """Any other URL under ``api/``: a JSON 404 like the API's others, for every method.

    Also what a POST to a path without its trailing slash gets: Django's APPEND_SLASH would
    answer it with a redirect that clients follow as a GET (or a RuntimeError with DEBUG).
    """

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[type[BaseThrottle]] = []
    schema = None  # not an operation

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        detail = exceptions.NotFound.default_detail
        if not request.path_info.endswith("/"):
            try:
                match = resolve(request.path_info + "/")
            except Resolver404:
                match = None
            if match is not None and getattr(match.func, "cls", None) is not NotFoundView:
                detail = _("Not found. Did you mean %(path)s (with the trailing slash)?") % {
                    "path": request.path + "/"
                }
        raise exceptions.NotFound(detail)
