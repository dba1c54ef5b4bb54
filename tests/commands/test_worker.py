"""``manage.py feedback_worker``: the periodic jobs without django-q2's schedules, once (cron) or
in a loop that keeps their SCHEDULES minutes and stops cleanly on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta

import pytest
from django.core.management.base import CommandError
from django.utils import timezone

from feedback_app.management.commands import feedback_worker
from feedback_app.management.commands.feedback_worker import JOBS, run_periodic
from feedback_app.models import Message
from feedback_app.states import Feedback

from ..factories import make_message
from .conftest import run

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _keep_the_test_connection(monkeypatch):
    """The worker drops stale connections between jobs; here that would close the connection
    holding the test's transaction."""
    monkeypatch.setattr(feedback_worker, "close_old_connections", lambda: None)


@pytest.fixture
def ran(monkeypatch) -> list[str]:
    """Replace every job by one that records its name."""
    names: list[str] = []
    for name, path in JOBS.items():
        monkeypatch.setattr(path, lambda name=name: names.append(name) or 0)
    return names


def test_once_runs_every_job_for_real():
    message = make_message()
    Message.objects.filter(pk=message.pk).update(
        feedback_deadline=timezone.now() - timedelta(minutes=1)
    )
    out = run("feedback_worker", "--once")
    for name in JOBS:
        assert f"{name}: " in out
    message.refresh_from_db()
    assert message.feedback == Feedback.EXPIRED


def test_once_with_jobs_runs_only_those(ran):
    run("feedback_worker", "--once", "--job", "purge_idempotency", "--job", "sweep_outbox")
    assert ran == ["purge_idempotency", "sweep_outbox"]


def test_a_failing_job_is_logged_the_others_run_and_once_exits_1(ran, monkeypatch, caplog):
    def broken() -> int:
        raise RuntimeError("database went away")

    monkeypatch.setattr(JOBS["expire_overdue"], broken)
    with pytest.raises(CommandError, match="Failed \\(see the log\\): expire_overdue"):
        run("feedback_worker", "--once")
    assert ran == [name for name in JOBS if name != "expire_overdue"]
    assert "periodic job expire_overdue failed" in caplog.text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "Give either --periodic or --once"),
        (["--periodic", "--once"], "Give either --periodic or --once"),
        (["--once", "--job", "vacuum"], "Unknown job 'vacuum'; jobs: sweep_outbox"),
    ],
)
def test_bad_options_are_refused_before_anything_runs(ran, args, message):
    with pytest.raises(CommandError, match=message):
        run("feedback_worker", *args)
    assert ran == []


def test_periodic_with_bad_schedule_minutes_is_refused(ran, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "SCHEDULES": {"poll_statuses": 0}}
    with pytest.raises(CommandError, match="SCHEDULES'\\]\\['poll_statuses'\\]"):
        run("feedback_worker", "--periodic")
    assert ran == []


class FakeTime:
    """A monotonic clock that only moves when the loop waits; stops the loop at ``until``."""

    def __init__(self, until: float) -> None:
        self.now = 0.0
        self.until = until
        self.stop = threading.Event()

    def clock(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        self.now += seconds
        if self.now >= self.until:
            self.stop.set()
        return self.stop.is_set()


def test_the_loop_runs_each_job_at_start_and_then_every_schedules_minutes(settings):
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "SCHEDULES": {"sweep_outbox": 1, "refresh_rollups": 5},
    }
    time = FakeTime(until=600)
    time.stop.wait = time.wait  # the loop's only way to pass time
    runs: list[tuple[str, float]] = []

    def run_job(name: str) -> bool:
        runs.append((name, time.now))
        return True

    run_periodic(["sweep_outbox", "refresh_rollups"], time.stop, run_job, time.clock)
    assert [t for name, t in runs if name == "sweep_outbox"] == [60.0 * n for n in range(10)]
    assert [t for name, t in runs if name == "refresh_rollups"] == [0.0, 300.0]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_loop_after_the_job_in_progress(monkeypatch, signum):
    before = signal.getsignal(signum)
    runs: list[str] = []

    def sweep() -> int:
        os.kill(os.getpid(), signum)  # arrives while the job runs
        runs.append("finished")
        return 0

    monkeypatch.setattr(JOBS["sweep_outbox"], sweep)
    out = run("feedback_worker", "--periodic", "--job", "sweep_outbox")
    assert runs == ["finished"]  # the job ran to its end, and no second round started
    assert out.rstrip().endswith("Stopped.")
    assert signal.getsignal(signum) is before  # the previous handler is back
