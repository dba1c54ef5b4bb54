"""The example project's URLs plus the HTTP benchmark's baseline: a plain Django view running the
confirm path's raw SQL (bench/floor.py), with no DRF, authentication or serializer."""

import json

from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from example_project.urls import urlpatterns as example_urlpatterns

from .floor import confirm_floor
from .status_floor import status_floor


@csrf_exempt
@require_POST
def plain_confirm(request: HttpRequest, pk: str) -> JsonResponse:
    from django.db import connection

    with transaction.atomic(), connection.cursor() as cursor:
        changed = confirm_floor(cursor, pk, timezone.now())
    return JsonResponse({"changed": changed})


#: Statuses the plain views apply: Twilio's MessageStatus and the SMS event types of SNS.
TWILIO_STATUSES = {"sent": "sent", "delivered": "delivered", "undelivered": "undelivered"}
SNS_STATUSES = {
    "TEXT_SENT": "sent",
    "TEXT_DELIVERED": "delivered",
    "TEXT_UNREACHABLE": "undelivered",
}


@csrf_exempt
@require_POST
def plain_twilio_status(request: HttpRequest) -> HttpResponse:
    """bench/webhooks.py's baseline of the Twilio webhook: its SQL, no signature check."""
    from django.db import connection

    status = request.POST["MessageStatus"]
    detail = {"error_code": request.POST["ErrorCode"]} if "ErrorCode" in request.POST else {}
    with transaction.atomic(), connection.cursor() as cursor:
        status_floor(
            cursor,
            "twilio",
            request.POST["MessageSid"],
            TWILIO_STATUSES[status],
            status,
            detail,
            timezone.now(),
        )
    return HttpResponse()


@csrf_exempt
@require_POST
def plain_sns_event(request: HttpRequest) -> HttpResponse:
    """bench/webhooks.py's baseline of the SNS webhook: its SQL, no auth or signature check."""
    from django.db import connection

    record = json.loads(json.loads(request.body)["Message"])
    event_type = record["eventType"]
    detail = {"eventType": event_type, "isFinal": record["isFinal"]}
    with transaction.atomic(), connection.cursor() as cursor:
        status_floor(
            cursor,
            "aws_sms",
            record["messageId"],
            SNS_STATUSES[event_type],
            event_type,
            detail,
            timezone.now(),
        )
    return HttpResponse()


urlpatterns = [
    path("bench/confirm/<uuid:pk>/", plain_confirm),
    path("bench/twilio-status/", plain_twilio_status),
    path("bench/sns-event/", plain_sns_event),
    *example_urlpatterns,
]
