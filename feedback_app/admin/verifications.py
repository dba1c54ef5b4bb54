"""ModelAdmin for Verification: read-only, each attempt with its messages."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.http import HttpRequest
from django.utils.safestring import SafeString
from django.utils.translation import gettext_lazy as _

from ..models import Message, Verification
from . import formats
from .messages import ReadOnlyAdmin, ReadOnlyInline


class VerificationMessageInline(ReadOnlyInline):
    model = Message
    fk_name = "verification"
    fields = ["sent_at", "resend", "provider", "delivery_status", "feedback", "confirmed_at"]
    readonly_fields = fields
    ordering = ["sent_at"]
    show_change_link = True

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("feedback_app.view_message")


@admin.register(Verification)
class VerificationAdmin(ReadOnlyAdmin):
    # Never the key's hash or the recipient's: they are for look-ups inside the app.
    list_display = [
        "id",
        "purpose",
        "recipient",
        "country",
        "created_at",
        "converted_at",
        "message_count",
    ]
    list_filter = ["purpose", "country", ("converted_at", admin.EmptyFieldListFilter)]
    search_fields = ["=id"]
    date_hierarchy = "created_at"
    ordering = ["-created_at"]
    list_per_page = 50
    show_full_result_count = False
    fields = [
        "id",
        "purpose",
        "recipient",
        "country",
        "created_at",
        "converted_at",
        "converting_message",
        "resends",
    ]
    readonly_fields = fields
    inlines = [VerificationMessageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Verification]:
        first = Message.objects.filter(verification=OuterRef("pk")).order_by("sent_at")
        return (
            super()
            .get_queryset(request)
            .annotate(
                message_total=Count("messages"),
                first_recipient=Subquery(first.values("recipient_masked")[:1]),
            )
        )

    @admin.display(description=_("recipient"))
    def recipient(self, verification: Verification) -> SafeString | str:
        """The masked recipient, read from one of its messages (the verification keeps none)."""
        masked = getattr(verification, "first_recipient", None)
        return formats.short_with_title(formats.masked(masked)) if masked else formats.MISSING

    @admin.display(description=_("messages"), ordering="message_total")
    def message_count(self, verification: Verification) -> int:
        return verification.message_total
