"""Benchmark 1, the confirm path: ``confirm()`` calls per second against the raw SQL floor (the
same conditional UPDATE and two INSERTs in one transaction through psycopg), and the latency a
confirmation adds to a request against calling the provider inline (the Twilio fake answering
in 150 ms, through the real twilio backend).

Run: ``python -m bench.confirm_path [--quick]`` with DATABASE_URL naming PostgreSQL.
"""

from __future__ import annotations

import time

from bench import common

LATENCY = 0.150  # seconds the provider fake takes to answer


def main() -> None:
    args = common.parse_args(__doc__ or "")
    per_round = common.size(args.quick, 300, 100)
    rounds = common.size(args.quick, 10, 4)
    inline_calls = common.size(args.quick, 20, 5)
    report = common.Report("confirm_path", args.quick)
    with common.bench_database("confirm_path") as url:
        import psycopg
        from django.utils import timezone

        from bench import floor
        from feedback_app import services

        common.insert_pending(per_round * rounds, prefix="APP")
        common.insert_pending(per_round * rounds, prefix="RAW")
        handoffs = time_enqueue()
        app_ids = common.pending_ids("APP")
        raw_ids = common.pending_ids("RAW")
        latencies: list[float] = []

        def app_round(index: int) -> int:
            for pk in app_ids[index * per_round : (index + 1) * per_round]:
                started = time.perf_counter()
                assert services.confirm(pk, source="api")
                latencies.append(time.perf_counter() - started)
            return per_round

        with psycopg.connect(url, autocommit=True) as raw:

            def raw_round(index: int) -> int:
                for pk in raw_ids[index * per_round : (index + 1) * per_round]:
                    with raw.transaction(), raw.cursor() as cursor:
                        assert floor.confirm_floor(cursor, pk, timezone.now())
                return per_round

            rates = common.interleave({"confirm()": app_round, "raw SQL": raw_round}, rounds)

        app_rate, raw_rate = common.median(rates["confirm()"]), common.median(rates["raw SQL"])
        report.add("confirm() calls/s (median of rounds)", app_rate, "calls/s")
        report.add("raw SQL floor (psycopg) transactions/s", raw_rate, "tx/s")
        report.ratio("confirm() / raw SQL floor (throughput)", app_rate / raw_rate, ">= 0.5")

        inline = inline_provider_latencies(inline_calls)
        confirm_ms = common.median(latencies) * 1000
        inline_ms = common.median(inline) * 1000
        report.add("confirm() latency p50", confirm_ms, "ms")
        report.add("confirm() latency p95", common.percentile(latencies, 0.95) * 1000, "ms")
        report.add("  of which broker hand-off p50", common.median(handoffs) * 1000, "ms")
        report.add("inline provider call p50 (150 ms fake)", inline_ms, "ms")
        report.ratios["confirm() latency / inline provider call"] = confirm_ms / inline_ms
        report.notes.append(
            f"confirm() includes handing the report to the {common.broker_name()} broker on "
            "commit; the raw floor writes the same rows and enqueues nothing"
        )
    report.write()


def time_enqueue() -> list[float]:
    """Record the seconds each hand-off to the broker takes (it runs on commit, in the request)."""
    from feedback_app import outbox

    enqueue = outbox.enqueue
    spent: list[float] = []

    def timed(call_ids: object) -> int:
        started = time.perf_counter()
        try:
            return enqueue(call_ids)
        finally:
            spent.append(time.perf_counter() - started)

    outbox.enqueue = timed
    return spent


def inline_provider_latencies(calls: int) -> list[float]:
    """Seconds per feedback call made inline, as a request would without the outbox."""
    from django.test import override_settings

    from feedback_app.conf import app_settings
    from feedback_app.providers.base import get_provider
    from feedback_app.testing import FakeServer
    from feedback_app.testing.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, TwilioFake

    fake = TwilioFake()
    latencies = []
    with FakeServer(fake) as server:
        twilio = {
            "ACCOUNT_SID": ACCOUNT_SID,
            "AUTH_TOKEN": AUTH_TOKEN,
            "FROM": "+15005550006",
            "BASE_URL": server.url,
        }
        providers = {**app_settings.PROVIDERS, "twilio": twilio}
        with override_settings(FEEDBACK_APP={**app_settings.user_settings, "PROVIDERS": providers}):
            provider = get_provider("twilio")
            sent = [
                provider.send(
                    to="+14155550123", body="123456", sender=None, channel="sms", message_id=""
                )
                for _ in range(calls)
            ]
            fake.latency = LATENCY
            for result in sent:
                started = time.perf_counter()
                provider.report_feedback(
                    provider_message_id=result.provider_message_id,
                    outcome="confirmed",
                    idempotency_key="",
                )
                latencies.append(time.perf_counter() - started)
    return latencies


if __name__ == "__main__":
    main()
