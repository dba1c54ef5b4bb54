"""URLs a host project includes once: ``path("feedback/", include("feedback_app.urls"))``.

The REST API (``api/``) and the provider webhooks (``webhooks/``) are added here.
"""

app_name = "feedback_app"

urlpatterns: list = []
