"""What every benchmark shares: a throw-away PostgreSQL database with Django set up on it, bulk
rows to work on, interleaved timing, and the report (a table on stdout, JSON in build/bench/).

Each benchmark measures the app and its baseline in the same run, alternating rounds of one and
the other, and reports their ratio: a noisy or slow machine moves both sides alike.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import operator
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "build" / "bench"


_COMPARISONS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}


def target_met(value: float, target: str) -> bool:
    """Whether ``value`` meets ``target``, written as an operator and a bound: ``">= 0.5"``."""
    comparison, bound = target.split()
    return _COMPARISONS[comparison](value, float(bound))


def describe_target(value: float, target: str | None) -> str:
    """``"target >= 0.5: met"``, for the tables; empty without a target."""
    if not target:
        return ""
    return f"target {target}: {'met' if target_met(value, target) else 'NOT MET'}"


@dataclass
class Row:
    """One measured figure, with the issue's target for it if it has one."""

    measure: str
    value: float
    unit: str
    target: str | None = None


@dataclass
class Report:
    """What a benchmark found: its figures and the ratios against its baselines."""

    name: str
    quick: bool
    rows: list[Row] = field(default_factory=list)
    #: Ratio name -> subject / baseline.
    ratios: dict[str, float] = field(default_factory=dict)
    #: Ratio name -> its target (``">= 0.5"``), for the ratios that have one.
    targets: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, measure: str, value: float, unit: str, target: str | None = None) -> None:
        self.rows.append(Row(measure, value, unit, target))

    def ratio(self, name: str, value: float, target: str | None = None) -> None:
        """Record subject / baseline; ``target`` e.g. ``">= 0.5"`` is printed beside it."""
        self.ratios[name] = value
        if target:
            self.targets[name] = target

    def write(self) -> Path:
        """Print the table and write build/bench/<name>.json; returns the JSON path."""
        width = max([len(r.measure) for r in self.rows] + [len(k) for k in self.ratios] + [20])
        print(f"\n== {self.name}{' (quick)' if self.quick else ''}")
        for row in self.rows:
            aside = describe_target(row.value, row.target)
            print(f"  {row.measure:<{width}}  {row.value:>12,.2f}  {row.unit:<6} {aside}".rstrip())
        for name, ratio in self.ratios.items():
            aside = describe_target(ratio, self.targets.get(name))
            print(f"  {name:<{width}}  {ratio:>12.3f}  {'x':<6} {aside}".rstrip())
        for note in self.notes:
            print(f"  note: {note}")
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{self.name}.json"
        data = {**asdict(self), "date": datetime.now(UTC).isoformat(), "machine": machine()}
        path.write_text(json.dumps(data, indent=2) + "\n")
        print(f"  -> {path.relative_to(ROOT)}")
        return path


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick",
        action="store_true",
        default=os.environ.get("BENCH_QUICK", "") not in ("", "0"),
        help="smaller sizes, for a fast run (also BENCH_QUICK=1)",
    )
    return parser.parse_args()


def size(quick: bool, full: int, small: int) -> int:
    return small if quick else full


def base_database_url() -> str:
    """DATABASE_URL, which must name PostgreSQL: every figure is a PostgreSQL figure."""
    url = os.environ.get("DATABASE_URL", "")
    if urlsplit(url).scheme not in ("postgres", "postgresql", "pgsql"):
        sys.exit(
            "bench: set DATABASE_URL to a PostgreSQL server, e.g. "
            "DATABASE_URL=postgres://postgres@127.0.0.1:5432/test make bench "
            "(each benchmark creates and drops its own database there)"
        )
    return url


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin_connection(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


@contextlib.contextmanager
def bench_database(name: str, settings: str = "bench.settings") -> Iterator[str]:
    """Create database ``bench_feedback_<name>``, migrate it with Django set up on it, drop it
    afterwards. Yields its URL (also put in ``DATABASE_URL`` for subprocesses)."""
    base = base_database_url()
    database = f"bench_feedback_{name}"
    with _admin_connection(base) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{database}"')
    url = _with_database(base, database)
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = settings
    os.environ["BENCH_QUEUE"] = database
    sys.path.insert(0, str(ROOT))
    try:
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        yield url
    finally:
        from django.db import connections

        clear_queue()
        connections.close_all()
        with _admin_connection(base) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def clear_queue() -> None:
    """Drop the tasks the benchmark left on its queue (nobody works the queue of most)."""
    from django_q.brokers import get_broker

    from feedback_app.conf import app_settings

    with contextlib.suppress(Exception):
        get_broker(app_settings.DJANGO_Q_CLUSTER).delete_queue()


def broker_name() -> str:
    from django.conf import settings

    return "redis" if settings.Q_CLUSTER.get("redis") else "orm"


def insert_pending(
    count: int, *, provider: str = "locmem", overdue: bool = False, prefix: str = "B"
) -> None:
    """Insert ``count`` pending messages in one statement (provider ids ``<prefix><n>``).

    Set-based because building a hundred thousand rows in Python would dominate the run; the
    columns are those ``track()`` writes. ``overdue`` puts their deadline an hour in the past.
    """
    from django.db import connection

    from feedback_app.models import Message

    deadline = "now() - interval '1 hour'" if overdue else "now() + interval '1 hour'"
    with connection.cursor() as cursor:
        # Table name from the model's meta; every value is a constant of this benchmark.
        cursor.execute(
            f"""
            INSERT INTO {Message._meta.db_table} (
                id, provider, provider_message_id, channel, purpose, sender, recipient_hash,
                recipient_masked, country, delivery_status, provider_status, feedback,
                feedback_requested, confirmed_late, sent_at, feedback_deadline, metadata,
                created_at, updated_at, resend)
            SELECT gen_random_uuid(), %s, %s || n, 'sms', 'otp', '', md5(n::text),
                   '+1******' || lpad((n %% 10000)::text, 4, '0'), 'US', 'sent', 'sent',
                   'pending', true, false, now() - interval '2 hours', {deadline}, '{{}}',
                   now(), now(), false
            FROM generate_series(1, %s) AS n
            """,  # noqa: S608
            [provider, prefix, count],
        )
        cursor.execute(f"ANALYZE {Message._meta.db_table}")  # noqa: S608


def pending_ids(prefix: str) -> list[Any]:
    """Ids of the pending messages whose provider id starts with ``prefix``, in a stable order."""
    from feedback_app.models import Message

    return list(
        Message.objects.filter(provider_message_id__startswith=prefix, feedback="pending")
        .order_by("provider_message_id")
        .values_list("pk", flat=True)
    )


def interleave(sides: dict[str, Callable[[int], int]], rounds: int) -> dict[str, list[float]]:
    """Run each side ``rounds`` times, alternating (A B A B ...), and return each side's rates
    (operations per second, one per round). ``side(round)`` does one round and returns how many
    operations it did. Alternating puts both sides under the same background load."""
    rates: dict[str, list[float]] = {name: [] for name in sides}
    for index in range(rounds):
        for name, side in sides.items():
            started = time.perf_counter()
            operations = side(index)
            rates[name].append(operations / (time.perf_counter() - started))
    return rates


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import django

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "memory_gb": _memory_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "django": django.get_version(),
    }
    # The server itself: the benchmark's own database is gone by the time the report is written.
    with contextlib.suppress(Exception), _admin_connection(base_database_url()) as admin:
        info["postgresql"] = admin.execute("SHOW server_version").fetchone()[0]
    return info


def _memory_gb() -> float | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server the benchmark starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(base: str, server: subprocess.Popen) -> None:
    """Wait (30 s at most) until the gunicorn ``server`` at ``base`` answers a request."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit("bench: gunicorn exited")
        try:
            urllib.request.urlopen(f"{base}/bench/confirm/up/", timeout=2)  # noqa: S310
        except urllib.error.HTTPError:
            return  # any answer (404 here) means a worker serves requests
        except OSError:
            time.sleep(0.2)
    sys.exit("bench: gunicorn did not answer in 30 s")
