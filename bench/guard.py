"""Benchmark 7, guard: what the SMS-pumping guard adds to ``send()`` (PostgreSQL + Redis).

``send()`` through the locmem provider with the guard at its defaults (recipient limit, the
automatic-block counter, the blocks in force; its counters in Redis) against ``send()`` with
``GUARD["ENABLED"] = False``, in alternating rounds of the same run. Each send is timed; the
figure is the difference of the medians (target: at most 1 ms) and their ratio. Every message
is confirmed after it is timed, so the automatic-block check that runs every MIN_ATTEMPTS sends
to a prefix sees converting traffic and blocks nothing, as in production.

Run: ``python -m bench.guard [--quick]`` with DATABASE_URL naming PostgreSQL and REDIS_URL
naming Redis.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import uuid

from bench import common


def main() -> None:
    args = common.parse_args(__doc__ or "")
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url.startswith(("redis://", "rediss://")):
        sys.exit("bench.guard: set REDIS_URL (the guard's figure is with its counters in Redis)")
    per_round = common.size(args.quick, 400, 100)
    rounds = common.size(args.quick, 8, 4)
    report = common.Report("guard", args.quick)
    with common.bench_database("guard"):
        from django.conf import settings
        from django.test import override_settings

        from feedback_app import services

        caches = {
            **settings.CACHES,
            "guard": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                # Keys of this run only; they expire with their windows.
                "KEY_PREFIX": f"bench-guard-{uuid.uuid4().hex}",
            },
        }
        guarded = {**settings.FEEDBACK_APP, "GUARD": {"CACHE": "guard"}}
        unguarded = {**settings.FEEDBACK_APP, "GUARD": {"CACHE": "guard", "ENABLED": False}}
        # A new number for every send (the recipient limit is 5 per 10 minutes), over several
        # German mobile ranges, so prefixes see the volume of a busy site.
        ranges = itertools.cycle(["+49151", "+49152", "+49160", "+49170", "+49176"])
        numbers = (f"{start}{n:08d}" for n, start in zip(itertools.count(10_000_000), ranges))
        timings: dict[str, list[float]] = {"with the guard": [], "without": []}

        def run(side: str, feedback_app: dict) -> None:
            with override_settings(CACHES=caches, FEEDBACK_APP=feedback_app):
                for _ in range(per_round):
                    to = next(numbers)
                    started = time.perf_counter()
                    message = services.send(provider="locmem", to=to, body="code 123456")
                    timings[side].append(time.perf_counter() - started)
                    services.confirm(message)

        run("with the guard", guarded)  # warm-up: connections, caches, the blocks read
        run("without", unguarded)
        for side in timings:
            timings[side].clear()
        for index in range(rounds):
            order = [("with the guard", guarded), ("without", unguarded)]
            for side, feedback_app in order if index % 2 == 0 else order[::-1]:
                run(side, feedback_app)

        # What the difference is made of: the guard alone, and one bare Redis round trip.
        from django.core.cache import caches as cache_handler

        from feedback_app import guard
        from feedback_app.recipients import parse_recipient

        alone, pings = [], []
        with override_settings(CACHES=caches, FEEDBACK_APP=guarded):
            client = cache_handler["guard"]._cache.get_client(None, write=True)
            for _ in range(per_round * rounds):
                recipient = parse_recipient(next(numbers), "sms")
                started = time.perf_counter()
                guard.check(recipient, provider="locmem", purpose="otp", channel="sms")
                alone.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.ping()
                pings.append(time.perf_counter() - started)

    with_guard = common.median(timings["with the guard"]) * 1000
    without = common.median(timings["without"]) * 1000
    report.add("send() p50, guard at its defaults (Redis)", with_guard, "ms")
    report.add("send() p50, GUARD['ENABLED'] = False", without, "ms")
    for side, values in timings.items():
        report.add(f"send() p95, {side}", common.percentile(values, 0.95) * 1000, "ms")
    report.add("added by the guard, p50", with_guard - without, "ms", "<= 1")
    report.add("guard.check() alone, p50", common.median(alone) * 1000, "ms")
    report.add("one Redis round trip (PING), p50", common.median(pings) * 1000, "ms")
    report.ratios["send() with / without the guard, p50"] = with_guard / without
    report.notes.append(f"{len(timings['without']):,} sends per side, {rounds} rounds")
    report.write()


if __name__ == "__main__":
    main()
