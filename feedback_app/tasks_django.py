"""The ``django.tasks`` task of QUEUE "django_tasks": deliver one provider call.

Imported by ``queue`` on first use only, never at start-up: ``@task`` checks the task against
the TASKS backend when it is applied, and a project on django-q2 may have no TASKS at all.
"""

from __future__ import annotations

from . import outbox
from .conf import app_settings
from .queue import tasks_api


# queue.py enqueues it with .using(backend=TASKS_BACKEND), so a later settings change applies.
@tasks_api().task(backend=app_settings.TASKS_BACKEND)
def deliver_call(call_id: int) -> str | None:
    """Deliver one provider call (enqueued on commit and by the sweep)."""
    return outbox.deliver(call_id)
