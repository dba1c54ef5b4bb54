"""Benchmark: retention, ``retention.purge()`` (what ``feedback_purge`` runs) of 1,000,000 old
messages with their events, provider calls and verifications, against the bare SQL that
deletes the same rows in one transaction.

The history is seeded once, set-based (about 3.5 events per message, a succeeded report for a
third of them, a verification for a quarter, a pending report for one in 10,000, which keeps
its message), with recent messages that must survive, and the rollups refreshed. Each side then
runs on its own copy of that database (``CREATE DATABASE ... TEMPLATE``), alternating rounds.
During each side two other threads write as a deployment does: ``track()`` + ``confirm()`` of
new messages, and the every-minute ``rollups.refresh()`` once a second; their longest call is
the longest a write waited. Afterwards exactly the old rows must be gone and the rest left.

Target: the purge at most 2 x the bare DELETE (it also recomputes the rollups of the hours it
deletes from, reported apart), no batch over a second, no concurrent write waiting a second.

Run: ``python -m bench.purge [--quick]`` with DATABASE_URL naming PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime

from bench import common

BATCH_SIZE = 1000
#: One old message in this many has a report still pending: the purge keeps it.
OPEN_EVERY = 10_000


def main() -> None:
    args = common.parse_args(__doc__ or "")
    old = common.size(args.quick, 1_000_000, 50_000)
    recent = common.size(args.quick, 20_000, 2_000)
    # A full round is two purges of 1,000,000 messages (10 to 20 minutes on 2 busy cores).
    rounds = common.size(args.quick, 1, 2)
    report = common.Report("purge", args.quick)
    with common.bench_database("purge"):
        from django.db import connection

        from feedback_app import rollups

        started = time.perf_counter()
        seed(old, recent)
        rollups.refresh(full=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
        print(f"seeded in {time.perf_counter() - started:.0f} s", flush=True)
        measure(report, old, rounds)
    report.write()


def measure(report: common.Report, old: int, rounds: int) -> None:
    """Purge and bare DELETE, ``rounds`` times each, on copies of the seeded database."""
    from django.conf import settings
    from django.db import connections

    from feedback_app import retention

    template = settings.DATABASES["default"]["NAME"]
    copy = f"{template}_copy"
    before = retention.cutoff(90)
    expected = survivors(before, after_purge=False)

    def on_copy(side: Callable[[datetime], dict[str, float]]) -> dict[str, float]:
        """Run ``side`` on a fresh copy of the seeded database; check what is left."""
        connections.close_all()
        settings.DATABASES["default"]["NAME"] = template
        with common._admin_connection(common.base_database_url()) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{copy}" TEMPLATE "{template}" STRATEGY FILE_COPY')
        settings.DATABASES["default"]["NAME"] = copy
        try:
            writes = Writers()
            with writes:
                figures = side(before)
            assert survivors(before) == expected, (survivors(before), expected)
            figures |= writes.longest()
            print(f"{side.__name__}: {figures}", flush=True)
            return figures
        finally:
            connections.close_all()
            settings.DATABASES["default"]["NAME"] = template
            with common._admin_connection(common.base_database_url()) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{copy}" WITH (FORCE)')

    results: dict[str, list[dict[str, float]]] = {"purge": [], "bare": []}
    for _ in range(rounds):
        results["purge"].append(on_copy(app_purge))
        results["bare"].append(on_copy(bare_delete))

    def median(side: str, key: str) -> float:
        return common.median([r[key] for r in results[side]])

    purge_s, bare_s = median("purge", "seconds"), median("bare", "seconds")
    report.add(f"retention.purge(), {old:,} messages, batches of {BATCH_SIZE}", purge_s, "s")
    report.add(
        "  of which rollups.recompute() of the deleted hours", median("purge", "rollups"), "s"
    )
    report.add("bare DELETE of the same rows, one transaction", bare_s, "s")
    report.add("purge messages/s", old / purge_s, "msg/s")
    report.add(
        "longest purge batch (transaction)",
        median("purge", "longest_batch") * 1000,
        "ms",
        "<= 1000",
    )
    report.add("purge batch p50", median("purge", "batch_p50") * 1000, "ms")
    for side, label in (("purge", "during the purge"), ("bare", "during the bare DELETE")):
        report.add(
            f"longest track()+confirm() {label}",
            median(side, "write") * 1000,
            "ms",
            "<= 1000" if side == "purge" else None,
        )
        report.add("  p50", median(side, "write_p50") * 1000, "ms")
        report.add(f"longest rollups.refresh() {label}", median(side, "refresh") * 1000, "ms")
    report.ratio("feedback_purge / bare DELETE (time)", purge_s / bare_s, "<= 2")
    report.ratio("  without the rollups recompute", (purge_s - median("purge", "rollups")) / bare_s)
    report.notes.append(
        f"{expected['messages']:,} messages survive each side (recent and open reports), "
        "checked after every round"
    )


def _tables() -> dict[str, str]:
    from feedback_app.models import Message, MessageEvent, ProviderCall, Verification

    return {
        "message": Message._meta.db_table,
        "event": MessageEvent._meta.db_table,
        "call": ProviderCall._meta.db_table,
        "verification": Verification._meta.db_table,
    }


def seed(old: int, recent: int) -> None:
    """Old messages spread over the 180 days before 91 days ago, recent ones over the last 10
    days, with their events, calls and verifications, each in one INSERT ... SELECT."""
    from django.db import connection, transaction

    t = _tables()
    # n, its message id and its sent_at; every statement below reads the same rows.
    rows = f"""
        (SELECT n, md5('m' || n)::uuid AS id,
                CASE WHEN n <= {old}
                     THEN now() - interval '91 days' - n * (interval '180 days' / {old})
                     ELSE now() - interval '10 days' + (n - {old}) * (interval '9 days' / {recent})
                END AS at
         FROM generate_series(1, {old + recent}) AS n) AS s
    """  # noqa: S608 - numbers of this benchmark
    with transaction.atomic(), connection.cursor() as cursor:
        # Constants of this benchmark and table names from the models' meta only.
        cursor.execute(
            f"""
            INSERT INTO {t["verification"]} (id, key_hash, purpose, recipient_hash, country,
                resends, created_at, converted_at, converting_message_id)
            SELECT md5('v' || n)::uuid, md5('k' || n), 'otp', md5(n::text), 'US', 0, at,
                   CASE WHEN n % 3 <> 0 THEN at + interval '20 seconds' END,
                   CASE WHEN n % 3 <> 0 THEN id END
            FROM {rows} WHERE n % 4 = 0
            """  # noqa: S608
        )
        cursor.execute(
            f"""
            INSERT INTO {t["message"]} (id, provider, provider_message_id, channel, purpose,
                sender, recipient_hash, recipient_masked, country, delivery_status,
                provider_status, feedback, feedback_requested, confirmed_late, sent_at,
                delivered_at, confirmed_at, feedback_deadline, metadata, created_at, updated_at,
                resend, verification_id)
            SELECT id, 'twilio', 'SM' || n, 'sms', 'otp', '', md5(n::text),
                   '+1******' || lpad((n % 10000)::text, 4, '0'), 'US', 'delivered',
                   'delivered', CASE WHEN n % 3 <> 0 THEN 'confirmed' ELSE 'expired' END,
                   true, false, at, at + interval '5 seconds',
                   CASE WHEN n % 3 <> 0 THEN at + interval '20 seconds' END,
                   at + interval '10 minutes', '{{}}', at, at + interval '10 minutes', false,
                   CASE WHEN n % 4 = 0 THEN md5('v' || n)::uuid END
            FROM {rows}
            """  # noqa: S608
        )
        cursor.execute(
            f"""
            INSERT INTO {t["event"]} (message_id, kind, from_value, to_value, source, actor,
                created_at, detail)
            SELECT id, e.kind, e.from_value, e.to_value, e.source, '', at + e.after, '{{}}'
            FROM {rows} CROSS JOIN (VALUES
                ('delivery', 'queued', 'sent', 'webhook', interval '1 second', false),
                ('delivery', 'sent', 'delivered', 'webhook', interval '5 seconds', false),
                ('provider', 'sent', 'delivered', 'webhook', interval '5 seconds', true),
                ('feedback', 'pending', 'confirmed', 'python', interval '20 seconds', false)
            ) AS e(kind, from_value, to_value, source, after, odd_only)
            WHERE NOT e.odd_only OR n % 2 = 1
            """  # noqa: S608
        )
        cursor.execute(
            f"""
            INSERT INTO {t["call"]} (message_id, provider, operation, payload, state, attempts,
                next_attempt_at, last_error, last_error_code, idempotency_key, created_at,
                completed_at)
            SELECT id, 'twilio', 'report_feedback', '{{"outcome": "confirmed"}}',
                   CASE WHEN n % {OPEN_EVERY} = 5 THEN 'pending' ELSE 'succeeded' END, 1,
                   at + interval '20 seconds', '', '', gen_random_uuid(),
                   at + interval '20 seconds',
                   CASE WHEN n % {OPEN_EVERY} <> 5 THEN at + interval '21 seconds' END
            FROM {rows} WHERE n % 3 = 1 OR n % {OPEN_EVERY} = 5
            """  # noqa: S608
        )


def survivors(before: datetime, *, after_purge: bool = True) -> dict[str, int]:
    """The seeded rows left (the concurrent writers' messages aside) and the purgeable
    messages still there; with ``after_purge=False``, what a purge must leave of them."""
    from django.db import connection

    t = _tables()
    purgeable = f"""
        m.sent_at < %s AND NOT EXISTS (SELECT 1 FROM {t["call"]} AS c
        WHERE c.message_id = m.id AND c.state IN ('pending', 'in_flight'))
    """  # noqa: S608
    kept = "true" if after_purge else f"NOT ({purgeable})"
    # After a purge every verification left must be counted, an orphan too.
    verifications = (
        f"SELECT count(*) FROM {t['verification']}"  # noqa: S608
        if after_purge
        else "SELECT count(DISTINCT verification_id) FROM kept"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH kept AS (SELECT id, verification_id FROM {t["message"]} AS m
                          WHERE provider = 'twilio' AND {kept})
            SELECT (SELECT count(*) FROM kept),
                   (SELECT count(*) FROM {t["event"]} WHERE message_id IN (SELECT id FROM kept)),
                   (SELECT count(*) FROM {t["call"]} WHERE message_id IN (SELECT id FROM kept)),
                   ({verifications}),
                   (SELECT count(*) FROM {t["message"]} AS m WHERE {purgeable})
            """,  # noqa: S608
            [before] * (kept.count("%s") + 1),
        )
        row = cursor.fetchone()
    if not after_purge:
        row = (*row[:4], 0)
    return dict(
        zip(("messages", "events", "calls", "verifications", "purgeable"), row, strict=True)
    )


def app_purge(before: datetime) -> dict[str, float]:
    """``retention.purge()``, each batch (one transaction) timed through its progress hook."""
    from feedback_app import retention, rollups

    ends: list[float] = []
    recomputes: list[float] = []
    recompute = rollups.recompute

    def timed_recompute(ranges: list) -> int:
        started = time.perf_counter()
        try:
            return recompute(ranges)
        finally:
            recomputes.append(time.perf_counter() - started)

    rollups.recompute = timed_recompute
    try:
        started = time.perf_counter()
        retention.purge(
            before, batch_size=BATCH_SIZE, progress=lambda _: ends.append(time.perf_counter())
        )
        seconds = time.perf_counter() - started
    finally:
        rollups.recompute = recompute
    batches = [b - a for a, b in zip([started, *ends], ends, strict=False)]
    return {
        "seconds": seconds,
        "rollups": sum(recomputes),
        "longest_batch": max(batches),
        "batch_p50": common.median(batches),
    }


def bare_delete(before: datetime) -> dict[str, float]:
    """The statements the database needs to delete the same rows, in one transaction."""
    from django.db import connection, transaction

    t = _tables()
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE TEMPORARY TABLE gone ON COMMIT DROP AS
            SELECT id, verification_id FROM {t["message"]} AS m WHERE sent_at < %s
            AND NOT EXISTS (SELECT 1 FROM {t["call"]} AS c WHERE c.message_id = m.id
                            AND c.state IN ('pending', 'in_flight'))
            """,  # noqa: S608
            [before],
        )
        cursor.execute("ANALYZE gone")
        # Table names from the models' meta.
        for statement in (
            f"DELETE FROM {t['event']} WHERE message_id IN (SELECT id FROM gone)",  # noqa: S608
            f"DELETE FROM {t['call']} WHERE message_id IN (SELECT id FROM gone)",  # noqa: S608
            f"UPDATE {t['verification']} SET converting_message_id = NULL "  # noqa: S608
            "WHERE converting_message_id IN (SELECT id FROM gone)",
            f"DELETE FROM {t['message']} WHERE id IN (SELECT id FROM gone)",  # noqa: S608
            f"DELETE FROM {t['verification']} AS v "  # noqa: S608
            "WHERE id IN (SELECT verification_id FROM gone) AND NOT EXISTS "
            f"(SELECT 1 FROM {t['message']} WHERE verification_id = v.id)",
        ):
            cursor.execute(statement)
    return {"seconds": time.perf_counter() - started}


class Writers:
    """While in use, two threads write as a deployment does beside the purge: ``track()`` and
    ``confirm()`` of new messages back to back, and ``rollups.refresh()`` once a second. Each
    call is timed: the longest is the longest a write waited for the purge."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.writes: list[float] = []
        self.refreshes: list[float] = []
        self.threads = [
            threading.Thread(target=self._write, daemon=True),
            threading.Thread(target=self._refresh, daemon=True),
        ]

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()

    def _write(self) -> None:
        from django.db import connection

        from feedback_app import services

        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                started = time.perf_counter()
                message = services.track(
                    provider="noreport",
                    provider_message_id=f"W{n}",
                    to=f"+1415555{n % 10000:04d}",
                )
                services.confirm(message)
                self.writes.append(time.perf_counter() - started)
                self.stop.wait(0.02)
        finally:
            connection.close()

    def _refresh(self) -> None:
        from django.db import connection

        from feedback_app import rollups

        try:
            while not self.stop.wait(1.0):
                started = time.perf_counter()
                rollups.refresh()
                self.refreshes.append(time.perf_counter() - started)
        finally:
            connection.close()

    def longest(self) -> dict[str, float]:
        return {
            "write": max(self.writes),
            "write_p50": common.median(self.writes),
            "refresh": max(self.refreshes, default=0.0),
        }


if __name__ == "__main__":
    main()
