"""Webhook URLs, mounted under ``webhooks/`` by ``feedback_app.urls``.

Each provider's webhook answers at ``<provider>/`` for its built-in key and at
``<provider>/<key>/`` for another key configured with the same backend.
"""

from django.urls import path

from .sns import SnsWebhookView

urlpatterns: list = [
    path("sns/", SnsWebhookView.as_view(default_provider="aws_sms"), name="webhook-sns"),
    path("sns/<str:provider>/", SnsWebhookView.as_view(), name="webhook-sns-key"),
]
