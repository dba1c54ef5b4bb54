"""Webhook URLs, mounted under ``webhooks/`` by ``feedback_app.urls``.

Each provider's webhook answers at ``<provider>/`` for its built-in key and at
``<provider>/<key>/`` for another key configured with the same backend.
"""

from django.urls import path

from .alibaba import AlibabaWebhookView
from .infobip import InfobipWebhookView
from .plivo import PlivoWebhookView
from .sinch import SinchWebhookView
from .sns import SnsWebhookView
from .telesign import TelesignWebhookView
from .twilio import TwilioWebhookView
from .vonage import VonageWebhookView

urlpatterns: list = [
    path("alibaba/", AlibabaWebhookView.as_view(), name="webhook-alibaba"),
    path("alibaba/<str:provider>/", AlibabaWebhookView.as_view(), name="webhook-alibaba-key"),
    path("infobip/", InfobipWebhookView.as_view(), name="webhook-infobip"),
    path("infobip/<str:provider>/", InfobipWebhookView.as_view(), name="webhook-infobip-key"),
    path("plivo/", PlivoWebhookView.as_view(), name="webhook-plivo"),
    path("plivo/<str:provider>/", PlivoWebhookView.as_view(), name="webhook-plivo-key"),
    path("sinch/", SinchWebhookView.as_view(), name="webhook-sinch"),
    path("sinch/<str:provider>/", SinchWebhookView.as_view(), name="webhook-sinch-key"),
    path("sns/", SnsWebhookView.as_view(default_provider="aws_sms"), name="webhook-sns"),
    path("sns/<str:provider>/", SnsWebhookView.as_view(), name="webhook-sns-key"),
    path("telesign/", TelesignWebhookView.as_view(), name="webhook-telesign"),
    path("telesign/<str:provider>/", TelesignWebhookView.as_view(), name="webhook-telesign-key"),
    path("twilio/", TwilioWebhookView.as_view(), name="webhook-twilio"),
    path("twilio/<str:provider>/", TwilioWebhookView.as_view(), name="webhook-twilio-key"),
    path("vonage/", VonageWebhookView.as_view(), name="webhook-vonage"),
    path("vonage/<str:provider>/", VonageWebhookView.as_view(), name="webhook-vonage-key"),
]
