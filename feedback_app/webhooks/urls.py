"""Webhook URLs, mounted under ``webhooks/`` by ``feedback_app.urls``.

Each provider's webhook answers at ``<provider>/`` for its built-in key and at
``<provider>/<key>/`` for another key configured with the same backend.
"""

from django.urls import path  # noqa: F401

urlpatterns: list = []
