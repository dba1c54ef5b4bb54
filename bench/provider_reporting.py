"""Benchmark 4, provider reporting: reports per second a ``manage.py qcluster`` on the Redis
broker delivers to a provider answering in 100 ms (the Twilio fake, through the real twilio
backend and SDK), against the bound its workers allow: workers / latency.

Run: ``python -m bench.provider_reporting [--quick]`` with DATABASE_URL naming PostgreSQL and
REDIS_URL naming Redis; without REDIS_URL it says so and measures nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from bench import common

LATENCY = 0.100  # seconds the provider fake takes to answer
WORKERS = 2


def main() -> None:
    args = common.parse_args(__doc__ or "")
    if not os.environ.get("REDIS_URL"):
        print("bench.provider_reporting: skipped, set REDIS_URL to run it on the Redis broker")
        return
    count = common.size(args.quick, 300, 60)
    report = common.Report("provider_reporting", args.quick)

    from feedback_app.testing import FakeServer
    from feedback_app.testing.twilio_fake import TwilioFake

    fake = TwilioFake()
    with FakeServer(fake) as server:
        # The example project points its twilio backend at the fakes through this variable;
        # the cluster inherits it with the rest of the environment.
        os.environ["FEEDBACK_FAKES_URL"] = server.url
        os.environ["Q_WORKERS"] = str(WORKERS)
        with common.bench_database("provider_reporting"):
            from feedback_app import services
            from feedback_app.models import ProviderCall

            # One number each: the guard allows a number five codes in ten minutes.
            messages = [
                services.send(provider="twilio", to=f"+1415555{n:04d}", body="Your code is 123456")
                for n in range(count + WORKERS * 2)
            ]
            warm_up, measured = messages[: WORKERS * 2], messages[WORKERS * 2 :]
            fake.latency = LATENCY
            cluster = subprocess.Popen(  # noqa: S603 - our interpreter and manage.py
                [sys.executable, "manage.py", "qcluster"],
                cwd=common.ROOT,
                start_new_session=True,
            )
            try:
                # Started and working: the warm-up reports went through.
                for message in warm_up:
                    services.confirm(message)
                _wait_for(
                    cluster,
                    lambda: ProviderCall.objects.filter(state="succeeded").count() == len(warm_up),
                )
                started = time.perf_counter()
                for message in measured:
                    services.confirm(message)
                _wait_for(
                    cluster,
                    lambda: ProviderCall.objects.filter(state="succeeded").count() == len(messages),
                )
                elapsed = time.perf_counter() - started
            finally:
                _stop(cluster)
            delivered = sum(len(outcomes) for outcomes in fake.feedback.values())
            assert delivered == len(messages), "a report was lost or sent twice"

            rate = count / elapsed
            bound = WORKERS / LATENCY
            report.add(f"reports delivered/s ({count} reports)", rate, "calls/s")
            report.add(f"bound: {WORKERS} workers / {LATENCY * 1000:.0f} ms", bound, "calls/s")
            report.ratios["delivered / bound"] = rate / bound
            report.notes.append(
                "timed from the first confirm() to the last call recorded succeeded"
            )
            report.write()


def _stop(cluster: subprocess.Popen) -> None:
    """SIGTERM to the cluster's main process only: it stops its own workers (a signal to the
    whole group kills them under it, and it respawns them). SIGKILL the group if it hangs."""
    cluster.send_signal(signal.SIGTERM)
    try:
        cluster.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(cluster.pid, signal.SIGKILL)
        cluster.wait()


def _wait_for(
    cluster: subprocess.Popen, condition: Callable[[], bool], timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if cluster.poll() is not None:
            sys.exit(f"bench.provider_reporting: the cluster exited with {cluster.returncode}")
        if time.monotonic() > deadline:
            sys.exit("bench.provider_reporting: the cluster did not deliver in time")
        time.sleep(0.05)


if __name__ == "__main__":
    main()
