"""The django-q2 schedules the app needs, created or updated idempotently (on migrate)."""

from __future__ import annotations

from typing import Any

from .conf import app_settings

#: name -> task function; minutes come from FEEDBACK_APP["SCHEDULES"].
SCHEDULES: dict[str, str] = {
    "feedback_app.sweep_outbox": "feedback_app.tasks.sweep_outbox",
    "feedback_app.expire_overdue": "feedback_app.tasks.expire_overdue",
    "feedback_app.poll_statuses": "feedback_app.tasks.poll_statuses",
    "feedback_app.refresh_rollups": "feedback_app.rollups.refresh",
    "feedback_app.purge_idempotency": "feedback_app.tasks.purge_idempotency",
}


def _wanted(name: str, func: str) -> dict[str, Any]:
    """The fields schedule ``name`` should have under the current settings."""
    from django_q.models import Schedule

    wanted: dict[str, Any] = {
        "func": func,
        "schedule_type": Schedule.MINUTES,
        "minutes": int(app_settings.SCHEDULES[name.removeprefix("feedback_app.")]),
        "repeats": -1,
    }
    if app_settings.QUEUE:
        wanted["cluster"] = app_settings.QUEUE
    return wanted


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

    written = []
    for name, func in SCHEDULES.items():
        wanted = _wanted(name, func)
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
    """post_migrate receiver: once both our tables and django-q2's exist."""
    from django.db import connection

    if "django_q_schedule" in connection.introspection.table_names():
        ensure_schedules()
