"""API URLs, mounted under ``api/`` by ``feedback_app.urls`` (so named ``feedback_app:api-...``)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path, re_path
from rest_framework.routers import SimpleRouter

from .schema import DocsView, SchemaView
from .views import ConfirmTokenView, MessageViewSet, NotFoundView, ReportView

router = SimpleRouter()
router.register("messages", MessageViewSet, basename="api-message")

urlpatterns = [
    *router.urls,
    path("confirm/<str:token>/", ConfirmTokenView.as_view(), name="api-confirm-token"),
    path("stats/", ReportView.as_view(), name="api-stats"),
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
    # Last: anything else under api/ is a JSON 404, not Django's HTML page or a redirect.
    re_path(r"^.*$", NotFoundView.as_view(), name="api-not-found"),
]

# The API answers anonymous calls itself (401/403 JSON from its authentication and permission
# classes), so LoginRequiredMiddleware must not turn them into a redirect to the login page.
# DRF 3.16+ exempts its views on its own; 3.15 does not.
for pattern in urlpatterns:
    login_not_required(pattern.callback)
