"""Connects the receiver that confirms a message when its token logs the user in."""

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TwoFactorIntegrationConfig(AppConfig):
    name = "feedback_app.integrations.two_factor"
    label = "feedback_app_two_factor"
    verbose_name = _("Message feedback for django-two-factor-auth")

    def ready(self) -> None:
        from two_factor.signals import user_verified

        from .gateway import confirm_on_verified

        user_verified.connect(confirm_on_verified, dispatch_uid="feedback_app.two_factor")
