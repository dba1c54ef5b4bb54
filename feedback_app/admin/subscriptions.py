"""The SNS subscription requests the webhook recorded: read-only, with an action that confirms
them through ``webhooks.subscriptions``."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import SnsSubscription
from ..webhooks import subscriptions
from .messages import ReadOnlyAdmin


@admin.register(SnsSubscription)
class SnsSubscriptionAdmin(ReadOnlyAdmin):
    list_display = ["received_at", "provider", "topic_arn", "confirmed_at", "confirmed_by"]
    list_filter = ["provider", ("confirmed_at", admin.EmptyFieldListFilter)]
    search_fields = ["=topic_arn", "=sns_message_id"]
    readonly_fields = [f.name for f in SnsSubscription._meta.fields]
    actions = ["confirm_selected"]

    def has_confirm_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("feedback_app.change_snssubscription")

    @admin.action(description=_("Confirm subscription"), permissions=["confirm"])
    def confirm_selected(self, request: HttpRequest, queryset: QuerySet) -> None:
        for subscription in queryset:
            try:
                confirmed = subscriptions.confirm(subscription, actor=request.user)
            except subscriptions.SubscriptionError as exc:
                self.message_user(
                    request,
                    _("%(topic)s: not confirmed: %(reason)s")
                    % {"topic": subscription.topic_arn, "reason": exc.reason},
                    messages.ERROR,
                )
                continue
            if confirmed:
                self.message_user(
                    request,
                    _("%(topic)s: subscription confirmed.") % {"topic": subscription.topic_arn},
                    messages.SUCCESS,
                )
            else:
                self.message_user(
                    request,
                    _("%(topic)s: already confirmed.") % {"topic": subscription.topic_arn},
                    messages.WARNING,
                )
