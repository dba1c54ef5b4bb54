"""Management commands (``manage.py feedback_*``)."""
