"""The guard's blocks and the sends it refused: read-only, with an action that lifts blocks
through ``feedback_app.blocks``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .. import blocks
from ..models import BlockedSend, GuardBlock
from ..reports import ReportFilters, reports_database
from .messages import ReadOnlyAdmin


class InForceFilter(admin.SimpleListFilter):
    title = _("in force")
    parameter_name = "in_force"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        active = blocks.active_filter(timezone.now())
        if self.value() == "yes":
            return queryset.filter(active)
        if self.value() == "no":
            return queryset.exclude(active)
        return queryset


@admin.register(GuardBlock)
class GuardBlockAdmin(ReadOnlyAdmin):
    list_display = [
        "since",
        "kind",
        "value",
        "in_force",
        "automatic",
        "reason",
        "until",
        "unblocked_at",
        "unblocked_by",
    ]
    list_filter = [InForceFilter, "kind", "automatic"]
    search_fields = ["=value"]
    readonly_fields = [f.name for f in GuardBlock._meta.fields]
    actions = ["lift_selected"]

    @admin.display(boolean=True, description=_("in force"))
    def in_force(self, block: GuardBlock) -> bool:
        now = timezone.now()
        return block.unblocked_at is None and (block.until is None or block.until > now)

    def has_lift_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("feedback_app.change_guardblock")

    @admin.action(description=_("Lift the selected blocks"), permissions=["lift"])
    def lift_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        lifted = sum(blocks.unblock(block, actor=request.user.get_username()) for block in queryset)
        self.message_user(
            request,
            _("%(lifted)d of %(selected)d blocks lifted (the others were no longer in force).")
            % {"lifted": lifted, "selected": len(queryset)},
            messages.SUCCESS if lifted else messages.WARNING,
        )


@admin.register(BlockedSend)
class BlockedSendAdmin(ReadOnlyAdmin):
    list_display = ["at", "code", "provider", "purpose", "country", "prefix", "client_kind"]
    list_filter = ["code", "provider", "purpose", "country", "client_kind"]
    date_hierarchy = "at"
    readonly_fields = [f.name for f in BlockedSend._meta.fields]


def dashboard_summary(filters: ReportFilters, now: datetime) -> dict[str, Any]:
    """The dashboard's guard section: the blocks in force, and the sends refused in the
    dashboard's period (and provider, purpose, channel, country) by the code that refused them.
    Two small reads on the reports database, like the rest of the page: blocks are few, and
    refusals are counted by an indexed time range."""
    db = reports_database()
    refused = BlockedSend.objects.using(db)
    if filters.sent_after is not None:
        refused = refused.filter(at__gte=filters.sent_after)
    if filters.sent_before is not None:
        refused = refused.filter(at__lt=filters.sent_before)
    for name in ("provider", "purpose", "channel", "country"):
        value = getattr(filters, name)
        if value is not None:
            refused = refused.filter(**{name: value})
    by_code = list(refused.values("code").annotate(count=Count("pk")).order_by("-count", "code"))
    return {
        "blocks": list(
            GuardBlock.objects.using(db).filter(blocks.active_filter(now)).order_by("-since")
        ),
        "refused": by_code,
        "total": sum(row["count"] for row in by_code),
    }
