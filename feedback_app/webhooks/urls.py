"""Webhook URLs, mounted under ``webhooks/`` by ``feedback_app.urls``.

Each provider's webhook answers at ``<provider>/`` for its built-in key and at
``<provider>/<key>/`` for another key configured with the same backend.
"""

from django.urls import path

from .plivo import PlivoWebhookView
from .sns import SnsWebhookView
from .twilio import TwilioWebhookView

urlpatterns: list = [
    path("plivo/", PlivoWebhookView.as_view(), name="webhook-plivo"),
    path("plivo/<str:provider>/", PlivoWebhookView.as_view(), name="webhook-plivo-key"),
    path("sns/", SnsWebhookView.as_view(default_provider="aws_sms"), name="webhook-sns"),
    path("sns/<str:provider>/", SnsWebhookView.as_view(), name="webhook-sns-key"),
    path("twilio/", TwilioWebhookView.as_view(), name="webhook-twilio"),
    path("twilio/<str:provider>/", TwilioWebhookView.as_view(), name="webhook-twilio-key"),
]
