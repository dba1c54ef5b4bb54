"""The ``manage.py feedback_*`` commands, one module each."""
