"""Benchmark: server time of the conversion dashboard's default view against a raw GROUP BY.

Run with DATABASE_URL pointing at PostgreSQL (the database named there is only used to create
and drop the ``bench_feedback_<size>`` databases)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python bench/dashboard.py --sizes 100000

For each size it seeds ``feedback_app.demo.seed`` history over 30 days into its own database
(``bench_feedback_<size>``; ``--reuse`` keeps one that already holds that many messages, so code
changes can be measured again without seeding for minutes), refreshes the rollups, then times
(median of ``--runs``) a GET of the dashboard's default 30-day view through Django's test
client, and the raw report (``source="raw"``: GROUP BY country with percentiles over the
messages) in the same run.

The page is timed with the messages table in two physical orders: stored in ``updated_at``
order (``CLUSTER`` on its index: what a fresh bulk load looks like), and not (after an UPDATE
rewrote a fixed 30 % of the rows, as confirmations and receipts do in production; values
unchanged, so the rollups stay exact). The second is what a real deployment looks like, and
where a plan that scans the table instead of reading the index shows. In that order it also
times the page with the changed hours compared against a subquery (the way before the
watermark was read first), for comparison, and the page in ``ZONES`` (days that are not UTC
days). Prints a table and writes build/bench/dashboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path
from unittest import mock
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_feedback"


def database_name(size: int) -> str:
    return f"{DATABASE}_{size}"


def prepare_database(url: str, name: str, *, reuse: bool) -> bool:
    """Create database ``name`` on the server of ``url`` (dropped first unless ``reuse``).

    Returns True when an existing database was kept.
    """
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        exists = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone()
        if exists and reuse:
            return True
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return False


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


#: Other time zones the page is timed in (the default view of the example project is UTC).
ZONES = ("America/New_York", "Asia/Kolkata")
#: A fixed 30 % of the messages (by a hash of the id), rewritten in place.
SCATTER = (
    "UPDATE feedback_app_message SET updated_at = updated_at WHERE abs(hashtext(id::text)) % 10 < 3"
)


def correlation(cursor) -> float | None:
    """PostgreSQL's estimate of how well the table's physical order follows ``updated_at``."""
    cursor.execute(
        "SELECT correlation FROM pg_stats "
        "WHERE tablename = 'feedback_app_message' AND attname = 'updated_at'"
    )
    row = cursor.fetchone()
    return None if row is None or row[0] is None else round(row[0], 3)


def timed(function, runs: int) -> float:
    """Median seconds of ``runs`` calls, after one warm-up call."""
    function()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        function()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    quick = os.environ.get("BENCH_QUICK", "") not in ("", "0")  # make bench QUICK=1
    parser.add_argument(
        "--sizes",
        default="100000" if quick else "100000,1000000",
        help="messages, comma-separated (100000 with BENCH_QUICK=1)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a database already seeded with the size (else drop and seed again)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        parser.error("set DATABASE_URL to a PostgreSQL server")
    sizes = [int(value) for value in args.sizes.split(",")]
    os.environ["DATABASE_URL"] = with_database(url, database_name(sizes[0]))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "example_project.settings")
    sys.path.insert(0, str(ROOT))

    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.db.models import Subquery
    from django.test import Client
    from django.test.utils import override_settings, setup_test_environment
    from django.urls import reverse
    from django.utils import timezone

    from feedback_app import demo, reports, rollups
    from feedback_app.models import DailyRollup, HourlyRollup, Message, RollupState
    from feedback_app.reports import ReportFilters, conversion_report

    setup_test_environment()  # the test client needs ALLOWED_HOSTS to accept "testserver"
    client = Client()
    dashboard = reverse("admin:feedback_app_conversiondashboard_changelist")

    def get_dashboard() -> None:
        response = client.get(dashboard)
        assert response.status_code == 200, response.status_code

    def raw_report() -> None:
        since = ReportFilters(sent_after=timezone.now() - timedelta(days=30))
        conversion_report(since, "country", source="raw")

    def subquery_state():
        """The rollup state as read before: changed hours compared against a subquery."""
        watermark = RollupState.objects.filter(pk=1).values("watermark")
        hours = reports._changed_hours(Message.objects.filter(updated_at__gte=Subquery(watermark)))
        return RollupState.objects.get(pk=1).watermark, sorted(hours)

    def page_ms() -> float:
        return round(timed(get_dashboard, args.runs) * 1000, 1)

    results = []
    for size in sizes:
        name = database_name(size)
        kept = prepare_database(url, name, reuse=args.reuse)
        connection.close()
        connection.settings_dict["NAME"] = name
        call_command("migrate", verbosity=0, interactive=False)
        seeded = None
        if not kept or Message.objects.count() != size:
            with connection.cursor() as cursor:
                cursor.execute(
                    "TRUNCATE feedback_app_message, feedback_app_messageevent, "
                    "feedback_app_providercall, feedback_app_verification"
                )
            start = time.perf_counter()
            demo.seed(days=30, messages=size)
            seeded = round(time.perf_counter() - start, 1)
        user = get_user_model().objects.filter(username="bench").first()
        if user is None:
            user = get_user_model().objects.create_superuser("bench", password="bench")  # noqa: S106
        client.force_login(user)
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
        start = time.perf_counter()
        rollups.refresh(full=True)
        refreshed = time.perf_counter() - start
        result = {
            "messages": Message.objects.count(),
            "rollup_rows": HourlyRollup.objects.count(),
            "daily_rollup_rows": DailyRollup.objects.count(),
            "seed_seconds": seeded,
            "full_refresh_seconds": round(refreshed, 2),
        }
        # Stored in updated_at order, as after a bulk load.
        with connection.cursor() as cursor:
            cursor.execute("CLUSTER feedback_app_message USING feedback_app_msg_updated")
            cursor.execute("VACUUM ANALYZE feedback_app_message")  # as below: like for like
            result["ordered_correlation"] = correlation(cursor)
        result["dashboard_ordered_ms"] = page_ms()
        # Not in updated_at order: 30 % of the rows rewritten, as in production.
        with connection.cursor() as cursor:
            cursor.execute(SCATTER)
            result["rows_rewritten"] = cursor.rowcount
            cursor.execute("VACUUM ANALYZE feedback_app_message")  # autocommit: no transaction
            result["scattered_correlation"] = correlation(cursor)
        result["dashboard_ms"] = page_ms()
        # Days not UTC days: the time series from the hourly rollups (and, in a zone offset by
        # half an hour, the hour around each local midnight from the messages).
        for zone in ZONES:
            with override_settings(TIME_ZONE=zone):
                result[f"dashboard_ms_{zone}"] = page_ms()
        with mock.patch.object(reports, "rollup_state", subquery_state):
            result["dashboard_subquery_state_ms"] = page_ms()
        result["raw_group_by_ms"] = round(timed(raw_report, args.runs) * 1000, 1)
        result["raw_over_dashboard"] = round(result["raw_group_by_ms"] / result["dashboard_ms"], 1)
        results.append(result)
        print(json.dumps(result), flush=True)

    print()
    print(
        f"{'messages':>10} {'rollups':>8} {'page, ordered':>14} {'page':>8} "
        f"{'page, subquery':>15} {'raw GROUP BY':>13} {'ratio':>6}  (ms)"
    )
    for r in results:
        print(
            f"{r['messages']:>10} {r['rollup_rows']:>8} {r['dashboard_ordered_ms']:>14} "
            f"{r['dashboard_ms']:>8} {r['dashboard_subquery_state_ms']:>15} "
            f"{r['raw_group_by_ms']:>13} {r['raw_over_dashboard']:>6}"
        )
    output = ROOT / "build" / "bench" / "dashboard.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    machine = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    output.write_text(json.dumps({"machine": machine, "results": results}, indent=2))
    print(f"written {output.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
