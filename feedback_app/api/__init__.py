"""The REST API (Django REST framework) over the same services as the Python API.

Mounted by ``feedback_app.urls`` under ``api/``; see docs/api.md.
"""
