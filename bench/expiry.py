"""Benchmark 3, expiry: ``expire_overdue()`` on 100,000 overdue messages against one bare
``UPDATE`` of the same rows.

Two providers: one that takes no ``failed`` report (transition and event per message, like
Twilio), at full size; one that does (AWS-like: an outbox row per message too, handed to the
broker after commit in tasks of a few calls, a batch per round trip), at a tenth of it, with
the hand-off's time reported apart. Target: expiry with reports at most 3 x the bare UPDATE.

Run: ``python -m bench.expiry [--quick]`` with DATABASE_URL naming PostgreSQL.
"""

from __future__ import annotations

import time

from bench import common


def main() -> None:
    args = common.parse_args(__doc__ or "")
    count = common.size(args.quick, 100_000, 10_000)
    rounds = common.size(args.quick, 3, 2)
    report = common.Report("expiry", args.quick)
    with common.bench_database("expiry"):
        from django.db import connection, transaction

        from feedback_app import outbox, services
        from feedback_app.models import Message, MessageEvent, ProviderCall, Verification

        tables = ", ".join(
            m._meta.db_table for m in (Message, MessageEvent, ProviderCall, Verification)
        )

        def fresh(provider: str, size: int) -> None:
            with connection.cursor() as cursor:
                cursor.execute(f"TRUNCATE {tables}")  # noqa: S608
            common.insert_pending(size, provider=provider, overdue=True)

        def app(provider: str, size: int) -> float:
            fresh(provider, size)
            started = time.perf_counter()
            assert services.expire_overdue() == size
            return time.perf_counter() - started

        def bare(size: int) -> float:
            fresh("noreport", size)
            started = time.perf_counter()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"UPDATE {Message._meta.db_table} SET feedback = 'expired', "  # noqa: S608
                    "updated_at = now() WHERE feedback = 'pending' AND feedback_deadline <= now()"
                )
                assert cursor.rowcount == size
            return time.perf_counter() - started

        app_times, bare_times = [], []
        for _ in range(rounds):
            app_times.append(app("noreport", count))
            bare_times.append(bare(count))
        app_s, bare_s = common.median(app_times), common.median(bare_times)
        report.add(f"expire_overdue(), {count:,} messages, no report", app_s, "s")
        report.add(f"bare UPDATE of the same {count:,} rows", bare_s, "s")
        report.add("expire_overdue() messages/s", count / app_s, "msg/s")
        report.ratios["expire_overdue() / bare UPDATE (time)"] = app_s / bare_s

        reported = count // 10
        handoff: list[float] = []
        enqueue = outbox.enqueue

        def timed_enqueue(call_ids: list[int]) -> int:
            started = time.perf_counter()
            try:
                return enqueue(call_ids)
            finally:
                handoff.append(time.perf_counter() - started)

        # Warm, as the schedule's long-lived worker is: the broker connected, its modules loaded.
        app("locmem", 10)
        outbox.enqueue = timed_enqueue
        report_times, handoff_times, small_bare_times = [], [], []
        for _ in range(rounds):
            handoff.clear()
            report_times.append(app("locmem", reported))
            assert ProviderCall.objects.count() == reported
            handoff_times.append(sum(handoff))
            small_bare_times.append(bare(reported))
            common.clear_queue()
        with_reports = common.median(report_times)
        handed = common.median(handoff_times)
        small_bare = common.median(small_bare_times)
        report.add(f"expire_overdue(), {reported:,} messages, failed reported", with_reports, "s")
        report.add(f"  of which {common.broker_name()} hand-off of the calls", handed, "s")
        report.add(f"bare UPDATE of the same {reported:,} rows", small_bare, "s")
        report.ratio(
            "expire_overdue() with reports / bare UPDATE", with_reports / small_bare, "<= 3"
        )
        report.ratios["  without the hand-off"] = (with_reports - handed) / small_bare
        common.clear_queue()
    report.write()


if __name__ == "__main__":
    main()
