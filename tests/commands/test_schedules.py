"""``manage.py feedback_schedules``: create, fix, and ``--check`` without writing."""

import pytest
from django.core.management.base import CommandError

from feedback_app.schedules import SCHEDULES

from .conftest import run

pytestmark = [pytest.mark.django_db, pytest.mark.django_q]


def test_check_fails_on_a_missing_or_changed_schedule_and_writes_nothing():
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    with pytest.raises(CommandError, match="Missing or different: feedback_app.sweep_outbox"):
        run("feedback_schedules", "--check")
    assert not Schedule.objects.exists()
    run("feedback_schedules")
    assert set(Schedule.objects.values_list("name", flat=True)) == set(SCHEDULES)
    assert "All schedules are as configured." in run("feedback_schedules", "--check")
    Schedule.objects.filter(name="feedback_app.expire_overdue").update(minutes=30)
    with pytest.raises(CommandError, match="feedback_app.expire_overdue"):
        run("feedback_schedules", "--check")
    assert "Created or updated: feedback_app.expire_overdue." in run("feedback_schedules")
    assert "already as configured" in run("feedback_schedules")


def test_with_django_tasks_there_are_no_schedules_to_write(settings):
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "QUEUE": "django_tasks"}
    with pytest.raises(CommandError, match="feedback_worker --periodic"):
        run("feedback_schedules")
    assert not Schedule.objects.exists()
