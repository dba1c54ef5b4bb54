from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class FeedbackAppConfig(AppConfig):
    name = "feedback_app"
    verbose_name = _("Message feedback")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .schedules import create_schedules_after_migrate

        post_migrate.connect(create_schedules_after_migrate, sender=self)
