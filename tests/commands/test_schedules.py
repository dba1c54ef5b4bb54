"""``manage.py feedback_schedules``: create, fix, and ``--check`` without writing."""

import pytest
from django.core.management.base import CommandError
from django_q.models import Schedule

from feedback_app.schedules import SCHEDULES

from .conftest import run

pytestmark = pytest.mark.django_db


def test_check_fails_on_a_missing_or_changed_schedule_and_writes_nothing():
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
