"""Webhook URLs, mounted under ``webhooks/`` by ``feedback_app.urls``.

Each provider's webhook answers at ``<provider>/`` for its built-in key and at
``<provider>/<key>/`` for another key configured with the same backend.
"""

from django.urls import path

from .sns import SnsWebhookView
from .twilio import TwilioWebhookView
from .vonage import VonageWebhookView

urlpatterns: list = [
    path("sns/", SnsWebhookView.as_view(default_provider="aws_sms"), name="webhook-sns"),
    path("sns/<str:provider>/", SnsWebhookView.as_view(), name="webhook-sns-key"),
    path("twilio/", TwilioWebhookView.as_view(), name="webhook-twilio"),
    path("twilio/<str:provider>/", TwilioWebhookView.as_view(), name="webhook-twilio-key"),
    path("vonage/", VonageWebhookView.as_view(), name="webhook-vonage"),
    path("vonage/<str:provider>/", VonageWebhookView.as_view(), name="webhook-vonage-key"),
]
