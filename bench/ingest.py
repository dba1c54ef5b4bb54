"""Benchmark 6, ingest: ``track()`` per second against the raw SQL floor (the message and its
event INSERTed in one transaction through psycopg), and the bulk path (``demo.seed``: messages
with their events and report calls in batched ``executemany``) against ``track()``.

Run: ``python -m bench.ingest [--quick]`` with DATABASE_URL naming PostgreSQL.
"""

from __future__ import annotations

import time
import uuid

from bench import common

# Table names come from the models' meta; every value is a parameter.
INSERT_MESSAGE = """
    INSERT INTO {table} (
        id, provider, provider_message_id, channel, purpose, sender, recipient_hash,
        recipient_masked, country, delivery_status, provider_status, feedback,
        feedback_requested, confirmed_late, sent_at, feedback_deadline, metadata,
        created_at, updated_at, resend)
    VALUES (%(id)s, 'locmem', %(pmid)s, 'sms', 'otp', '', %(hash)s, '+1******0123', 'US',
            'queued', '', 'pending', true, false, now(), now() + interval '10 minutes', '{{}}',
            now(), now(), false)
"""
INSERT_EVENT = """
    INSERT INTO {table} (message_id, kind, from_value, to_value, source, actor, created_at, detail)
    VALUES (%(id)s, 'delivery', '', 'queued', 'python', '', now(), '{{}}')
"""


def main() -> None:
    args = common.parse_args(__doc__ or "")
    per_round = common.size(args.quick, 500, 100)
    rounds = common.size(args.quick, 6, 3)
    bulk_size = common.size(args.quick, 100_000, 10_000)
    report = common.Report("ingest", args.quick)
    with common.bench_database("ingest") as url:
        import psycopg

        from feedback_app import demo, services
        from feedback_app.models import Message, MessageEvent

        message_sql = INSERT_MESSAGE.format(table=Message._meta.db_table)
        event_sql = INSERT_EVENT.format(table=MessageEvent._meta.db_table)

        def track_round(index: int) -> int:
            for n in range(per_round):
                services.track(
                    provider="locmem",
                    provider_message_id=f"T{index}-{n}",
                    to="+14155550123",
                    metadata={"flow": "login"},
                )
            return per_round

        with psycopg.connect(url, autocommit=True) as raw:

            def raw_round(index: int) -> int:
                for n in range(per_round):
                    params = {"id": uuid.uuid4(), "pmid": f"R{index}-{n}", "hash": "0" * 64}
                    with raw.transaction(), raw.cursor() as cursor:
                        cursor.execute(message_sql, params)
                        cursor.execute(event_sql, params)
                return per_round

            rates = common.interleave({"track()": track_round, "raw SQL": raw_round}, rounds)

        track_rate = common.median(rates["track()"])
        raw_rate = common.median(rates["raw SQL"])
        report.add("track() messages/s", track_rate, "msg/s")
        report.add("raw SQL floor (message + event, one tx each)", raw_rate, "msg/s")
        report.ratios["track() / raw SQL floor"] = track_rate / raw_rate

        started = time.perf_counter()
        assert demo.seed(days=30, messages=bulk_size) == bulk_size
        bulk_rate = bulk_size / (time.perf_counter() - started)
        report.add(
            f"bulk path (demo.seed, {bulk_size:,} messages with history)", bulk_rate, "msg/s"
        )
        report.ratios["bulk path / track()"] = bulk_rate / track_rate
    report.write()


if __name__ == "__main__":
    main()
