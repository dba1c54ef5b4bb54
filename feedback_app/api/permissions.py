"""Who may call what: Django model permissions and the app's own, one class per ability.

Each class needs an authenticated user, so an anonymous caller is refused (401, or 403 with
only session authentication) before anything is looked up, and a user without the permission
gets 403 for the whole endpoint, whichever id it names: nobody learns whether a message exists.
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.utils.translation import gettext_lazy as _
from rest_framework.permissions import BasePermission
from rest_framework.request import Request


class HasModelPermission(BasePermission):
    """The user is authenticated and has ``permission`` ("app_label.codename")."""

    permission: ClassVar[str]

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(self.permission))


class CanViewMessages(HasModelPermission):
    permission = "feedback_app.view_message"
    message = _("You may not view messages.")


class CanTrackMessages(HasModelPermission):
    permission = "feedback_app.add_message"
    message = _("You may not track messages.")


class CanSendMessages(HasModelPermission):
    permission = "feedback_app.send_message"
    message = _("You may not send messages.")


class CanConfirmMessages(HasModelPermission):
    """Confirm or fail a message by its id or by the provider's id."""

    permission = "feedback_app.confirm_message"
    message = _("You may not confirm or fail messages.")


class CanViewReport(HasModelPermission):
    permission = "feedback_app.view_report"
    message = _("You may not view the conversion report.")


class CanUseTheAPI(BasePermission):
    """Any one of the permissions the API's endpoints need: for its schema and docs page.

    Every logged-in user of the site need not learn the API's shape, only its users.
    """

    permissions = (
        CanViewMessages.permission,
        CanTrackMessages.permission,
        CanSendMessages.permission,
        CanConfirmMessages.permission,
        CanViewReport.permission,
    )
    message = _("You may not use this API.")

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return any(user.has_perm(permission) for permission in self.permissions)
