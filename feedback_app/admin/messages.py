"""ModelAdmins for Message and ProviderCall. They read; actions call services."""

from __future__ import annotations

import re

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import outbox, services
from ..models import Message, MessageEvent, ProviderCall
from ..states import Source
from . import formats


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
    # What people watch first (when, to whom, did it arrive, was it used), then what it went
    # through; compact cells, so the table fits at 1400 px beside the filters.
    list_display = [
        "sent",
        "delivery",
        "conversion",
        "recipient",
        "purpose_label",
        "route",
        "provider_id",
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

    class Media:
        css = {"all": ["feedback_app/messages.css"]}

    @admin.display(description=_("sent"), ordering="sent_at")
    def sent(self, message: Message) -> SafeString:
        local = timezone.localtime(message.sent_at)
        return format_html(
            '<time datetime="{}" title="{}">{}</time>',
            message.sent_at.isoformat(),
            date_format(local, "DATETIME_FORMAT"),
            date_format(local, "d M H:i"),
        )

    @admin.display(description=_("delivery"), ordering="delivery_status")
    def delivery(self, message: Message) -> str:
        return message.get_delivery_status_display()

    @admin.display(description=_("feedback"), ordering="feedback")
    def conversion(self, message: Message) -> str:
        if message.confirmed_late:
            return _("%(feedback)s, late") % {"feedback": message.get_feedback_display()}
        return message.get_feedback_display()

    @admin.display(description=_("recipient"), ordering="recipient_masked")
    def recipient(self, message: Message) -> SafeString:
        """The masked recipient (long runs of ``*`` shortened) and its country."""
        short = formats.masked(message.recipient_masked)
        return format_html(
            '<span title="{}">{}</span> <span class="fa-country">{}</span>',
            message.recipient_masked,
            short,
            message.country,
        )

    @admin.display(description=_("purpose"), ordering="purpose")
    def purpose_label(self, message: Message) -> SafeString:
        # A long slug may break after "_" or "-" when the table would not fit otherwise.
        parts = re.split(r"(?<=[_-])", message.purpose)
        return format_html_join(SafeString("<wbr>"), "{}", ((part,) for part in parts))

    @admin.display(description=_("provider"), ordering="provider")
    def route(self, message: Message) -> str:
        return f"{message.provider} · {message.get_channel_display()}"

    @admin.display(description=_("provider id"), ordering="provider_message_id")
    def provider_id(self, message: Message) -> SafeString:
        return formats.short_with_title(message.provider_message_id, limit=10)

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
