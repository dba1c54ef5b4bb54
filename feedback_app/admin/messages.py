"""ModelAdmins for Message and ProviderCall. They read; actions call services."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import outbox, services
from ..models import Message, MessageEvent, ProviderCall
from ..states import Source


def _retry(model_admin: admin.ModelAdmin, request: HttpRequest, calls: QuerySet) -> None:
    """Queue failed or given-up calls again (retry_calls skips any other state)."""
    count = outbox.retry_calls(queryset=calls)
    model_admin.message_user(
        request,
        ngettext("%d provider call queued again.", "%d provider calls queued again.", count)
        % count,
    )


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Shows rows and their history; changes go through actions that call services."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # The change view is the detail page; nothing on it is editable.
        return request.method in ("GET", "HEAD") and super().has_view_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # History is append-only; retention is the purge command's job, in batches.
        return False


class MessageEventInline(ReadOnlyInline):
    model = MessageEvent
    fields = ["created_at", "kind", "from_value", "to_value", "source", "actor", "detail"]
    readonly_fields = fields
    ordering = ["created_at", "id"]


class ProviderCallInline(ReadOnlyInline):
    model = ProviderCall
    fields = [
        "created_at",
        "operation",
        "payload",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error_code",
        "last_error",
        "completed_at",
    ]
    readonly_fields = fields


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = [
        "sent_at",
        "provider",
        "purpose",
        "channel",
        "recipient_masked",
        "country",
        "delivery_status",
        "feedback",
        "confirmed_late",
        "provider_message_id",
    ]
    list_filter = [
        "provider",
        "purpose",
        "channel",
        "country",
        "feedback",
        "delivery_status",
        "confirmed_late",
        "sent_at",
    ]
    search_fields = ["=provider_message_id", "=id"]
    date_hierarchy = "sent_at"
    ordering = ["-sent_at"]
    list_per_page = 50
    show_full_result_count = False  # COUNT(*) over millions of rows on every page is wasted
    inlines = [MessageEventInline, ProviderCallInline]
    actions = ["confirm_selected", "fail_selected", "retry_calls"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_confirm_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("feedback_app.confirm_message")

    def _transition(self, request: HttpRequest, queryset: QuerySet, action, verb: str) -> None:
        changed = sum(
            action(message, source=Source.ADMIN, actor=request.user)
            for message in queryset.only("pk")
        )
        self.message_user(
            request,
            ngettext("%(count)d message %(verb)s.", "%(count)d messages %(verb)s.", changed)
            % {"count": changed, "verb": verb},
            messages.SUCCESS if changed else messages.WARNING,
        )

    @admin.action(description=_("Confirm selected messages"), permissions=["confirm"])
    def confirm_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition(request, queryset, services.confirm, "confirmed")

    @admin.action(description=_("Mark selected messages as failed"), permissions=["confirm"])
    def fail_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._transition(request, queryset, services.fail, "marked as failed")

    @admin.action(description=_("Retry failed provider calls"), permissions=["confirm"])
    def retry_calls(self, request: HttpRequest, queryset: QuerySet) -> None:
        _retry(self, request, ProviderCall.objects.filter(message__in=queryset))


@admin.register(ProviderCall)
class ProviderCallAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "provider",
        "operation",
        "payload",
        "state",
        "attempts",
        "next_attempt_at",
        "last_error_code",
    ]
    list_filter = ["provider", "operation", "state"]
    search_fields = ["=message__provider_message_id", "=idempotency_key"]
    raw_id_fields = ["message"]
    readonly_fields = [f.name for f in ProviderCall._meta.fields]
    actions = ["retry_selected"]
    show_full_result_count = False

    def has_retry_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("feedback_app.confirm_message")

    @admin.action(description=_("Retry selected calls"), permissions=["retry"])
    def retry_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        _retry(self, request, queryset)
