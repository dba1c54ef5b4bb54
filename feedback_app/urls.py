"""URLs a host project includes once: ``path("feedback/", include("feedback_app.urls"))``.

Provider webhooks are under ``webhooks/``, the REST API under ``api/`` (docs/api.md), and the
confirmation link a message may carry under ``c/<token>/``.
"""

from django.urls import include, path

from .views import ConfirmLinkView

app_name = "feedback_app"

urlpatterns = [
    path("webhooks/", include("feedback_app.webhooks.urls")),
    path("api/", include("feedback_app.api.urls")),
    path("c/<str:token>/", ConfirmLinkView.as_view(), name="confirm-link"),
]
