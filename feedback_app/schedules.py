"""The app's periodic jobs, and their django-q2 schedules (QUEUE "django_q"), created or updated
idempotently on migrate. With QUEUE "django_tasks", ``manage.py feedback_worker`` runs the jobs."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .conf import app_settings
from .queue import DJANGO_Q

logger = logging.getLogger(__name__)

#: name -> task function; minutes come from FEEDBACK_APP["SCHEDULES"].
SCHEDULES: dict[str, str] = {
    "feedback_app.sweep_outbox": "feedback_app.tasks.sweep_outbox",
    "feedback_app.expire_overdue": "feedback_app.tasks.expire_overdue",
    "feedback_app.poll_statuses": "feedback_app.tasks.poll_statuses",
    "feedback_app.refresh_rollups": "feedback_app.rollups.refresh",
    "feedback_app.purge_idempotency": "feedback_app.tasks.purge_idempotency",
    "feedback_app.block_pumped_prefixes": "feedback_app.tasks.block_pumped_prefixes",
}


def _wanted(name: str, func: str) -> dict[str, Any]:
    """The fields schedule ``name`` should have under the current settings."""
    from django_q.models import Schedule

    wanted: dict[str, Any] = {
        "func": func,
        "schedule_type": Schedule.MINUTES,
        "minutes": minutes(name.removeprefix("feedback_app.")),
        "repeats": -1,
    }
    if app_settings.DJANGO_Q_CLUSTER:
        wanted["cluster"] = app_settings.DJANGO_Q_CLUSTER
    return wanted


def minutes(key: str) -> int:
    """Minutes between runs of job ``key`` (a SCHEDULES key: the name without the prefix)."""
    schedules = app_settings.SCHEDULES
    value = schedules.get(key) if isinstance(schedules, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ImproperlyConfigured(
            f"FEEDBACK_APP['SCHEDULES'][{key!r}] must be a positive number of minutes, "
            f"not {value!r} (manage.py check reports it as feedback_app.E013)."
        )
    return value


def outdated_schedules() -> list[str]:
    """Names of the schedules that are missing or differ from the settings; writes nothing."""
    from django_q.models import Schedule

    existing = {s.name: s for s in Schedule.objects.filter(name__in=list(SCHEDULES))}
    outdated = []
    for name, func in SCHEDULES.items():
        schedule = existing.get(name)
        wanted = _wanted(name, func)
        if schedule is None or any(getattr(schedule, k) != v for k, v in wanted.items()):
            outdated.append(name)
    return outdated


def ensure_schedules() -> list[str]:
    """Create missing schedules and fix changed ones; returns the names written."""
    from django_q.models import Schedule

    # Every schedule's fields first: bad settings write nothing rather than half.
    all_wanted = {name: _wanted(name, func) for name, func in SCHEDULES.items()}
    written = []
    for name, wanted in all_wanted.items():
        schedule = Schedule.objects.filter(name=name).first()
        if schedule is None:
            Schedule.objects.create(name=name, **wanted)
        elif any(getattr(schedule, key) != value for key, value in wanted.items()):
            Schedule.objects.filter(pk=schedule.pk).update(**wanted)
        else:
            continue
        written.append(name)
    return written


def create_schedules_after_migrate(**kwargs: Any) -> None:
    """post_migrate receiver: with QUEUE "django_q", once both our tables and django-q2's exist.

    Bad SCHEDULES settings leave the schedules as they are, with a warning: migrate itself
    must not fail on them (the system check reports them). With QUEUE "django_tasks" nothing
    here touches django-q2, installed or not.
    """
    from django.db import connection

    if app_settings.QUEUE != DJANGO_Q:
        return
    if "django_q_schedule" not in connection.introspection.table_names():
        return
    try:
        ensure_schedules()
    except ImproperlyConfigured as exc:
        logger.warning("feedback_app: schedules not created or updated: %s", exc)
