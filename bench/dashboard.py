"""Benchmark: server time of the conversion dashboard's default 30-day view, in three time zones,
at two volumes (the page should not grow with the number of messages).

Run with DATABASE_URL pointing at PostgreSQL (the database named there is only used to create
and drop the ``bench_feedback_dashboard_<size>`` databases)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/test python -m bench.dashboard \\
        --sizes 1000000,10000000

For each size it seeds 30 days of history with set-based SQL (``seed``: one INSERT ... SELECT
over ``generate_series``, ten million messages in minutes; ``--reuse`` keeps a database that
already holds that many messages), refreshes the rollups in full (timed), then times (median of
``--runs`` after a warm-up) a GET of the dashboard's default view through Django's test client
in UTC, America/New_York and Asia/Kolkata (a half-hour zone), with the messages table in two
physical orders: stored in ``updated_at`` order (``CLUSTER``: a fresh bulk load) and not (an
UPDATE rewrote a fixed 30 % of the rows, as confirmations and receipts do in production; values
unchanged, so the rollups stay exact). Ratios: the page at the largest size over the page at the
smallest, per zone. Writes build/bench/dashboard.json (``bench.common.Report``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
DATABASE = "bench_feedback_dashboard"

#: The zones the page is timed in: UTC days, whole-hour offset with DST, half-hour offset.
ZONES = ("UTC", "America/New_York", "Asia/Kolkata")
#: A fixed 30 % of the messages (by a hash of the id), rewritten in place.
SCATTER = (
    "UPDATE feedback_app_message SET updated_at = updated_at WHERE abs(hashtext(id::text)) % 10 < 3"
)
#: Page target (ms) and the growth allowed from the smallest to the largest size.
PAGE_TARGET = "< 200"
GROWTH_TARGET = "<= 1.5"

PROVIDERS = ("twilio", "aws_sms", "chime", "vonage", "plivo", "sinch", "infobip", "telnyx", "bird")
COUNTRIES = ("US", "IN", "BR", "ID", "GB", "DE", "MX")
PURPOSES = ("otp", "login", "signup", "password_reset")


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
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return False


def drop_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _array(values: tuple[str, ...]) -> str:
    return "(ARRAY[" + ", ".join(f"'{value}'" for value in values) + "])"


#: Messages ``1..n`` spread evenly over ``days`` up to now. ``h1`` picks the dimensions (252
#: combinations, as many as the demo history has), ``h2`` the outcome and time to confirm: 62 %
#: confirmed (2 s to 2 h, most under a minute), expired, failed, superseded, undelivered, the
#: last ten minutes pending; every tenth message is a resend of the verification of the one
#: before.
SEED_MESSAGES = f"""
INSERT INTO feedback_app_message (
    id, provider, provider_message_id, channel, purpose, sender, recipient_hash,
    recipient_masked, country, delivery_status, provider_status, feedback, feedback_requested,
    confirmed_late, sent_at, delivered_at, confirmed_at, feedback_deadline, metadata,
    created_at, updated_at, resend, verification_id)
SELECT lpad(to_hex(n), 32, '0')::uuid, {_array(PROVIDERS)}[1 + h1 %% 9],
       'bench' || lpad(n::text, 10, '0'), 'sms', {_array(PURPOSES)}[1 + (h1 / 63) %% 4],
       'S' || (h1 %% 9), md5((n %% 200000)::text), '+1******' || lpad((n %% 10000)::text, 4, '0'),
       {_array(COUNTRIES)}[1 + (h1 / 9) %% 7],
       CASE WHEN o < 3 THEN 'failed' WHEN o < 8 THEN 'undelivered' ELSE 'delivered' END,
       CASE WHEN o < 3 THEN 'failed' WHEN o < 8 THEN 'undelivered' ELSE 'delivered' END,
       CASE WHEN sent > now() - interval '10 minutes' THEN 'pending'
            WHEN o < 8 THEN 'expired' WHEN o < 70 THEN 'confirmed' WHEN o < 74 THEN 'failed'
            WHEN o < 78 THEN 'superseded' ELSE 'expired' END,
       true, o >= 8 AND o < 70 AND delay > 600, sent,
       CASE WHEN o >= 8 THEN sent + interval '3 seconds' END,
       CASE WHEN o >= 8 AND o < 70 AND sent <= now() - interval '10 minutes'
            THEN sent + delay * interval '1 second' END,
       sent + interval '10 minutes', '{{}}', sent,
       least(now(), sent + CASE WHEN o >= 8 AND o < 70 THEN delay * interval '1 second'
                                ELSE interval '10 minutes' END),
       n %% 10 = 0, lpad(to_hex(CASE WHEN n %% 10 = 0 THEN n - 1 ELSE n END), 32, '0')::uuid
FROM (
    SELECT n, h1, h2 %% 100 AS o, 2 + power((h2 / 100) %% 10000 / 10000.0, 4) * 7200 AS delay,
           now() - %(days)s * interval '1 day'
               + (n - 1) * (%(days)s * 86400.0 / %(size)s) * interval '1 second' AS sent
    FROM (
        SELECT n, abs(hashtext(n::text)) AS h1, abs(hashtext(n::text || 'o')) AS h2
        FROM generate_series(1, %(size)s) AS n
    ) hashed
) drawn
"""  # noqa: S608 - the arrays are constants of this module

#: One verification per first message, its resend counted (the message after it, when seeded);
#: converted when its first message was confirmed. Row by row from the first messages: no join
#: nor GROUP BY over ten million rows; the key hash (unique) in id order, so its index is
#: appended to rather than updated at random places.
SEED_VERIFICATIONS = """
INSERT INTO feedback_app_verification (
    id, key_hash, purpose, recipient_hash, country, resends, created_at, converted_at)
SELECT verification_id, lpad(replace(verification_id::text, '-', ''), 64, '0'), purpose,
       recipient_hash, country,
       CASE WHEN substr(provider_message_id, 6)::bigint %% 10 = 9
                 AND substr(provider_message_id, 6)::bigint < %(size)s THEN 1 ELSE 0 END,
       sent_at, confirmed_at
FROM feedback_app_message WHERE NOT resend
"""


def seed(cursor, size: int, days: int = 30) -> None:
    """Insert ``size`` messages over ``days`` and their verifications, set-based.

    The indexes that back no constraint are dropped first and built again after, several times
    faster than keeping them up to date row by row. Run it in a transaction. Delivery events
    and provider calls are not written: the dashboard reads neither.
    """
    cursor.execute(
        "TRUNCATE feedback_app_message, feedback_app_messageevent, feedback_app_providercall, "
        "feedback_app_verification CASCADE"
    )
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes "
        "WHERE tablename IN ('feedback_app_message', 'feedback_app_verification') "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
    )
    indexes = cursor.fetchall()
    for index, _ in indexes:
        cursor.execute(f'DROP INDEX "{index}"')
    # No foreign key checks (triggers) while seeding: the rows are consistent by construction,
    # and ten million deferred checks would be queued in memory.
    cursor.execute("SET LOCAL session_replication_role = replica")
    cursor.execute(SEED_MESSAGES, {"days": days, "size": size})
    cursor.execute(SEED_VERIFICATIONS, {"size": size})
    cursor.execute("SET LOCAL session_replication_role = DEFAULT")
    for _, definition in indexes:
        cursor.execute(definition)


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
        default="10000,100000" if quick else "1000000,10000000",
        help="messages, comma-separated, smallest first (10000,100000 with BENCH_QUICK=1)",
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep a database already seeded with the size, and keep it afterwards",
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
    from django.db import connection, transaction
    from django.test import Client
    from django.test.utils import override_settings, setup_test_environment
    from django.urls import reverse

    from bench import common
    from feedback_app import rollups
    from feedback_app.models import (
        DailyRollup,
        HourlyRollup,
        Message,
        QuarterHourRollup,
        QuarterHourTotal,
    )

    setup_test_environment()  # the test client needs ALLOWED_HOSTS to accept "testserver"
    client = Client()
    dashboard = reverse("admin:feedback_app_conversiondashboard_changelist")
    report = common.Report("dashboard", quick)

    def get_dashboard() -> None:
        response = client.get(dashboard)
        assert response.status_code == 200, response.status_code

    def page_ms() -> float:
        return round(timed(get_dashboard, args.runs) * 1000, 1)

    pages: dict[tuple[int, str], float] = {}
    for size in sizes:
        name = database_name(size)
        kept = prepare_database(url, name, reuse=args.reuse)
        connection.close()
        connection.settings_dict["NAME"] = name
        call_command("migrate", verbosity=0, interactive=False)
        label = f"{size:,}"
        if not kept or Message.objects.count() != size:
            start = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                seed(cursor, size)
            report.add(f"seed {label} messages (SQL)", time.perf_counter() - start, "s")
        user = get_user_model().objects.filter(username="bench").first()
        if user is None:
            user = get_user_model().objects.create_superuser("bench", password="bench")  # noqa: S106
        client.force_login(user)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        start = time.perf_counter()
        rollups.refresh(full=True)
        report.add(f"full refresh at {label}", time.perf_counter() - start, "s")
        with connection.cursor() as cursor:
            # As autovacuum would soon after: the rows the refresh replaced gone, statistics
            # of the new ones.
            cursor.execute("VACUUM ANALYZE")
        for model in (QuarterHourTotal, QuarterHourRollup, HourlyRollup, DailyRollup):
            report.add(f"{model._meta.verbose_name} rows at {label}", model.objects.count(), "rows")
        for order in ("ordered", "scattered"):
            with connection.cursor() as cursor:
                if order == "ordered":  # stored in updated_at order, as after a bulk load
                    cursor.execute("CLUSTER feedback_app_message USING feedback_app_msg_updated")
                else:  # 30 % of the rows rewritten, as in production
                    cursor.execute(SCATTER)
                cursor.execute("VACUUM ANALYZE feedback_app_message")
            for zone in ZONES:
                with override_settings(TIME_ZONE=zone):
                    ms = page_ms()
                pages[size, f"{zone} {order}"] = ms
                report.add(f"page at {label}, {zone}, {order}", ms, "ms", PAGE_TARGET)
        connection.close()
        if not args.reuse:
            drop_database(url, name)
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        for zone in ZONES:
            for order in ("ordered", "scattered"):
                key = f"{zone} {order}"
                report.ratio(
                    f"page at {large:,} / at {small:,}, {key}",
                    pages[large, key] / pages[small, key],
                    GROWTH_TARGET,
                )
    report.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
