"""Benchmark 2, HTTP: ``POST feedback/api/messages/{id}/confirm/`` requests per second under
gunicorn (2 sync workers) against a plain Django view running the same SQL (bench/urls.py),
both driven by wrk (another process, loopback) on pending messages.

wrk is a system package (``apt-get install wrk``); the benchmark says so and stops without it.
Run: ``python -m bench.http_confirm [--quick]`` with DATABASE_URL naming PostgreSQL.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import common

WORKERS = 2
THREADS = 2
CONNECTIONS = 8


def main() -> None:
    args = common.parse_args(__doc__ or "")
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("bench.http_confirm: needs wrk (apt-get install wrk)")
    seconds = common.size(args.quick, 10, 4)
    rounds = common.size(args.quick, 3, 1)
    report = common.Report("http_confirm", args.quick)
    with common.bench_database("http_confirm"), tempfile.TemporaryDirectory() as scratch:
        from django.contrib.auth.models import Permission, User
        from rest_framework.authtoken.models import Token

        user = User.objects.create_user("bench")
        user.user_permissions.add(Permission.objects.get(codename="confirm_message"))
        token = Token.objects.create(user=user).key
        # More pending messages than either side can confirm, so every request is a transition.
        per_side = common.size(args.quick, 30_000, 6_000)
        common.insert_pending(per_side, prefix="API")
        common.insert_pending(per_side, prefix="RAW")
        # One slice of the ids per run, so no run meets a message an earlier one confirmed.
        files: dict[tuple[str, int], Path] = {}
        for prefix in ("API", "RAW"):
            ids = [str(pk) for pk in common.pending_ids(prefix)]
            chunk = len(ids) // rounds
            for run in range(rounds):
                files[prefix, run] = Path(scratch) / f"{prefix}-{run}.txt"
                files[prefix, run].write_text("\n".join(ids[run * chunk : (run + 1) * chunk]))

        port = common.free_port()
        server = _gunicorn(port)
        try:
            base = f"http://127.0.0.1:{port}"
            common.wait_until_up(base, server)
            sides = {
                "API": ("/feedback/api/messages/{id}/confirm/", f"Token {token}"),
                "RAW": ("/bench/confirm/{id}/", "-"),
            }
            results: dict[str, list[tuple[float, float]]] = {"API": [], "RAW": []}
            for run in range(rounds):
                for side, (template, auth) in sides.items():
                    results[side].append(_wrk(wrk, base, files[side, run], template, auth, seconds))
        finally:
            server.terminate()
            server.wait(timeout=30)

        api_rate = common.median([rate for rate, _ in results["API"]])
        raw_rate = common.median([rate for rate, _ in results["RAW"]])
        report.add("API confirm requests/s", api_rate, "req/s")
        report.add("API confirm latency p50", common.median([p for _, p in results["API"]]), "ms")
        report.add("plain Django view, same SQL, requests/s", raw_rate, "req/s")
        report.add("plain view latency p50", common.median([p for _, p in results["RAW"]]), "ms")
        report.ratio("API / plain view (requests/s)", api_rate / raw_rate, ">= 0.6")
        report.notes.append(
            f"gunicorn {WORKERS} sync workers; wrk {THREADS} threads, {CONNECTIONS} connections, "
            f"{seconds} s per run, {rounds} run(s) per side alternating; the API also hands each "
            f"report to the {common.broker_name()} broker"
        )
    report.write()


def _wrk(
    wrk: str, base: str, ids: Path, template: str, auth: str, seconds: int
) -> tuple[float, float]:
    """Requests per second and p50 latency (ms) of one wrk run; fails on any non-2xx answer."""
    script = Path(__file__).with_name("confirm.lua")
    output = subprocess.run(  # noqa: S603 - wrk from PATH, arguments of this benchmark
        [wrk, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "-s", str(script)]
        + [base, "--", str(ids), template, auth, str(THREADS)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        sys.exit(f"bench.http_confirm: errors under load:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return rate, float(p50.group(1)) * scale


def _gunicorn(port: int) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return subprocess.Popen(  # noqa: S603 - gunicorn beside this interpreter
        [str(gunicorn), "example_project.wsgi:application", f"--workers={WORKERS}"]
        + [f"--bind=127.0.0.1:{port}", "--log-level=warning"],
        cwd=common.ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"},
    )


if __name__ == "__main__":
    main()
