from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from two_factor.urls import urlpatterns as two_factor_urls

from .otp_example import locmem_outbox, protected

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    path("feedback/", include("feedback_app.urls")),
    # Two-factor login (account/login/, account/two_factor/setup/) and a page that needs it.
    path("", include(two_factor_urls)),
    path("protected/", protected, name="protected"),
    path("locmem-outbox/", locmem_outbox, name="locmem-outbox"),
]
