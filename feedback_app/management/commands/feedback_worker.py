"""``manage.py feedback_worker``: run the app's periodic jobs, for projects on ``django.tasks``
(QUEUE "django_tasks"), whose queue has no schedules of its own."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser
from django.db import close_old_connections
from django.utils.module_loading import import_string

from ... import schedules
from ...conf import app_settings
from ...queue import DJANGO_Q
from ..base import FeedbackCommand

logger = logging.getLogger("feedback_app.worker")

#: Job name (a SCHEDULES key) -> dotted path of the function it runs.
JOBS = {name.removeprefix("feedback_app."): func for name, func in schedules.SCHEDULES.items()}


class Command(FeedbackCommand):
    verbosity = 1
    help = (
        "Run the app's periodic jobs (" + ", ".join(JOBS) + ") in this process: with "
        "--periodic, each at start and then every SCHEDULES minutes, until SIGTERM or SIGINT "
        "(the job in progress finishes first); with --once, each once, then exit (for cron or "
        "a systemd timer; exit status 1 if a job failed). For QUEUE 'django_tasks': with "
        "'django_q' the django-q2 schedules run these jobs already."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--periodic",
            action="store_true",
            help="Run until stopped, each job every SCHEDULES minutes (one process per site).",
        )
        parser.add_argument(
            "--once", action="store_true", help="Run each job once, then exit (cron, timers)."
        )
        parser.add_argument(
            "--job",
            action="append",
            metavar="NAME",
            help=f"Only this job ({', '.join(JOBS)}); repeat it for several. Default: all.",
        )

    def clean(self, options: dict[str, Any]) -> dict[str, Any]:
        if options["periodic"] == options["once"]:
            raise CommandError("Give either --periodic or --once.")
        jobs = list(dict.fromkeys(options["job"] or JOBS))
        unknown = [job for job in jobs if job not in JOBS]
        if unknown:
            raise CommandError(
                f"Unknown job {', '.join(map(repr, unknown))}; jobs: {', '.join(JOBS)}."
            )
        if options["periodic"]:
            try:
                for job in jobs:
                    schedules.minutes(job)
            except ImproperlyConfigured as exc:
                raise CommandError(str(exc)) from exc
        return {**options, "job": jobs}

    def handle(self, *args: Any, **options: Any) -> None:
        self.verbosity = options["verbosity"]
        jobs = options["job"]
        if options["once"]:
            failed = [job for job in jobs if not self.run_job(job)]
            if failed:
                raise CommandError(f"Failed (see the log): {', '.join(failed)}.")
            return
        if app_settings.QUEUE == DJANGO_Q:
            self.stderr.write(
                "FEEDBACK_APP['QUEUE'] is 'django_q': its schedules run these jobs too "
                "(harmless, but one of the two is enough)."
            )
        stop = threading.Event()
        with _stopped_by_signals(stop):
            self.stdout.write(f"Running {', '.join(jobs)}; SIGTERM or Ctrl-C stops.")
            run_periodic(jobs, stop, self.run_job)
        self.stdout.write("Stopped.")

    def run_job(self, job: str) -> bool:
        """Run one job; False if it raised (logged: the loop goes on with the next)."""
        close_old_connections()  # a long-lived process: drop connections the server closed
        started = time.monotonic()
        try:
            result = import_string(JOBS[job])()
        except Exception:
            logger.exception("feedback_app: periodic job %s failed", job)
            return False
        finally:
            close_old_connections()
        if self.verbosity >= 1:
            took = time.monotonic() - started
            self.stdout.write(f"{job}: {result!r} ({took:.2f} s)")
        return True


def run_periodic(
    jobs: list[str],
    stop: threading.Event,
    run_job: Callable[[str], bool],
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run each job at once and then every SCHEDULES minutes after its last start, until
    ``stop`` is set. Minutes are read before each wait, so a settings reload applies."""
    due = dict.fromkeys(jobs, clock())
    while not stop.is_set():
        for job in jobs:
            if stop.is_set():
                return
            if due[job] <= clock():
                started = clock()
                run_job(job)
                due[job] = started + 60 * schedules.minutes(job)
        stop.wait(max(0.0, min(due.values()) - clock()))


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set ``stop`` instead of killing the process mid-job."""

    def handler(signum: int, frame: object) -> None:
        logger.info("feedback_app: %s, stopping after the current job", signal.strsignal(signum))
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
