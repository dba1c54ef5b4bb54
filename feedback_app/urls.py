"""URLs a host project includes once: ``path("feedback/", include("feedback_app.urls"))``.

Provider webhooks are under ``webhooks/``; the REST API will be under ``api/``.
"""

from django.urls import include, path

app_name = "feedback_app"

urlpatterns = [
    path("webhooks/", include("feedback_app.webhooks.urls")),
]
