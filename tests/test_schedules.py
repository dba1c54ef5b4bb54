"""The django-q2 schedules the app needs exist after migrate, once, and follow the settings."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from feedback_app.schedules import SCHEDULES, ensure_schedules

pytestmark = [pytest.mark.django_db, pytest.mark.django_q]

REQUIRED = {
    "feedback_app.sweep_outbox": "feedback_app.tasks.sweep_outbox",
    "feedback_app.expire_overdue": "feedback_app.tasks.expire_overdue",
}


def ours() -> list[dict]:
    from django_q.models import Schedule

    return list(
        Schedule.objects.filter(name__startswith="feedback_app.")
        .order_by("name")
        .values("pk", "name", "func", "schedule_type", "minutes", "repeats", "cluster", "next_run")
    )


def test_migrate_creates_each_schedule_once():
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    call_command("migrate", verbosity=0, interactive=False)
    rows = ours()
    schedules = {s["name"]: s for s in rows}
    assert len(rows) == len(schedules) == len(SCHEDULES)
    assert set(schedules) == set(SCHEDULES)
    for name, func in REQUIRED.items():
        assert schedules[name]["func"] == func
        assert schedules[name]["schedule_type"] == Schedule.MINUTES
        assert schedules[name]["minutes"] == 1
        assert schedules[name]["repeats"] == -1
        assert schedules[name]["cluster"] is None


def test_the_test_database_has_the_schedules_from_its_own_migrate():
    assert REQUIRED.items() <= {(s["name"], s["func"]) for s in ours()}


def test_migrating_again_or_ensuring_again_changes_nothing():
    from django_q.models import Schedule

    before = ours()
    call_command("migrate", verbosity=0, interactive=False)
    assert ensure_schedules() == []
    assert ours() == before
    assert Schedule.objects.filter(name__in=list(REQUIRED)).count() == 2


def test_changed_minutes_in_settings_update_the_schedules(settings):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "SCHEDULES": {"sweep_outbox": 5, "expire_overdue": 15},
    }
    before = {s["name"]: s for s in ours()}
    assert sorted(ensure_schedules()) == sorted(REQUIRED)
    after = {s["name"]: s for s in ours()}
    assert after["feedback_app.sweep_outbox"]["minutes"] == 5
    assert after["feedback_app.expire_overdue"]["minutes"] == 15
    # Updated in place: same rows, nothing duplicated.
    assert {n: s["pk"] for n, s in after.items()} == {n: s["pk"] for n, s in before.items()}
    assert ensure_schedules() == []


def test_a_configured_queue_sends_the_schedules_to_that_cluster(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "DJANGO_Q_CLUSTER": "feedback"}
    assert sorted(ensure_schedules()) == sorted(SCHEDULES)
    assert {s["cluster"] for s in ours()} == {"feedback"}
    assert ensure_schedules() == []


def test_a_schedule_edited_by_hand_is_put_back():
    from django_q.models import Schedule

    Schedule.objects.filter(name="feedback_app.sweep_outbox").update(minutes=60, repeats=0)
    assert ensure_schedules() == ["feedback_app.sweep_outbox"]
    schedule = Schedule.objects.get(name="feedback_app.sweep_outbox")
    assert (schedule.minutes, schedule.repeats) == (1, -1)


@pytest.mark.parametrize(
    "schedules",
    [{"sweep_outbox": "often"}, {"expire_overdue": 0}, {"poll_statuses": 2.5}, "often", [1]],
)
def test_migrate_with_bad_schedule_settings_warns_and_changes_nothing(settings, caplog, schedules):
    before = ours()
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "SCHEDULES": schedules}
    call_command("migrate", verbosity=0, interactive=False)  # does not crash
    assert ours() == before
    assert "schedules not created or updated" in caplog.text
    assert "feedback_app.E013" in caplog.text


def test_ensure_schedules_with_bad_settings_names_the_setting_and_writes_nothing(settings):
    from django_q.models import Schedule

    Schedule.objects.filter(name__startswith="feedback_app.").delete()
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "SCHEDULES": {"poll_statuses": "hourly"}}
    with pytest.raises(ImproperlyConfigured, match="poll_statuses"):
        ensure_schedules()
    assert ours() == []


def test_with_django_tasks_migrate_leaves_the_schedules_alone(settings):
    from django_q.models import Schedule

    Schedule.objects.all().delete()
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "QUEUE": "django_tasks"}
    call_command("migrate", verbosity=0, interactive=False)
    assert not Schedule.objects.exists()
