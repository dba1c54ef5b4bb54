"""The example project's URLs plus the HTTP benchmark's baseline: a plain Django view running the
confirm path's raw SQL (bench/floor.py), with no DRF, authentication or serializer."""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from example_project.urls import urlpatterns as example_urlpatterns

from .floor import confirm_floor


@csrf_exempt
@require_POST
def plain_confirm(request: HttpRequest, pk: str) -> JsonResponse:
    from django.db import connection

    with transaction.atomic(), connection.cursor() as cursor:
        changed = confirm_floor(cursor, pk, timezone.now())
    return JsonResponse({"changed": changed})


urlpatterns = [
    path("bench/confirm/<uuid:pk>/", plain_confirm),
    *example_urlpatterns,
]
