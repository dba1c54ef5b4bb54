"""Webhook ingestion: signed Twilio status callbacks, and AWS End User Messaging SMS events through
SNS, per second through the app's webhook views under gunicorn (2 sync workers), each against a
plain Django view running the same SQL (bench/status_floor.py, bench/urls.py) without signature
checks or the app's code. wrk (another process, loopback) posts a pre-generated list of signed
requests, every one exactly once.

The callbacks are a realistic mix, shuffled: ``sent`` then ``delivered``, the two the other way
round, a duplicate ``delivered`` (for SNS a redelivery of the very same notification), and
``undelivered`` with an error code. Each message is seeded as ``sent``, so a ``sent`` changes
nothing; after the runs every message must be at its final status with one delivery event.

SNS notifications are signed (SignatureVersion 2) with the key of a local certificate issued to
``sns.amazonaws.com``, as in tests/webhooks/test_sns.py; the gunicorn workers serve it for an
SNS certificate URL from a file (``application``), so nothing is fetched from AWS, and the
webhook verifies it once per worker and every signature with it, as in production.

wrk is a system package (``apt-get install wrk``); the benchmark says so and stops without it.
Run: ``python -m bench.webhooks [--quick]`` with DATABASE_URL naming PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from bench import common

WORKERS = 2
#: gthread rather than sync workers: they keep connections alive, so the connection wrk opens
#: again after a thread's last answer (sync workers close each one) does not hold a worker idle
#: while other threads still post. One thread each: one request at a time, as a sync worker.
WORKER_CLASS = "gthread"
#: wrk threads, one connection each: a thread stops after its last answer, so no request is
#: sent twice, and two connections per gunicorn worker keep both busy.
CONNECTIONS = 4
SETTINGS = "bench.webhook_settings"
#: An SNS certificate URL the workers serve from the benchmark's file (``application``).
CERTIFICATE_URL = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-bench.pem"
TWILIO_PATH = "/feedback/webhooks/twilio/"
SNS_PATH = "/feedback/webhooks/sns/"
FORM = "application/x-www-form-urlencoded"
SNS_CONTENT_TYPE = "text/plain; charset=UTF-8"

#: Twilio MessageStatus sequences (each message is ``sent`` already) -> the final status.
TWILIO_MIX: list[tuple[list[str], str]] = [
    (["sent", "delivered"], "delivered"),
    (["delivered", "sent"], "delivered"),
    (["sent", "delivered", "delivered"], "delivered"),
    (["sent", "undelivered"], "undelivered"),
]
#: SNS event types, likewise; "again" is SNS delivering the previous notification once more.
SNS_MIX: list[tuple[list[str], str]] = [
    (["TEXT_SENT", "TEXT_DELIVERED"], "delivered"),
    (["TEXT_DELIVERED", "TEXT_SENT"], "delivered"),
    (["TEXT_SENT", "TEXT_DELIVERED", "again"], "delivered"),
    (["TEXT_SENT", "TEXT_UNREACHABLE"], "undelivered"),
]


@dataclass(frozen=True)
class Side:
    """One measured side: what it posts where, and the wrk arguments for it."""

    name: str
    provider: str
    path: str
    content_type: str
    signature_header: str
    authorization: str


def sides() -> list[Side]:
    from bench.webhook_settings import SNS_BASIC_AUTH

    sns_auth = "Basic " + base64.b64encode(SNS_BASIC_AUTH.encode()).decode()
    return [
        Side("twilio webhook", "twilio", TWILIO_PATH, FORM, "X-Twilio-Signature", "-"),
        Side("twilio plain", "twilio", "/bench/twilio-status/", FORM, "X-Twilio-Signature", "-"),
        Side("sns webhook", "aws_sms", SNS_PATH, SNS_CONTENT_TYPE, "-", sns_auth),
        Side("sns plain", "aws_sms", "/bench/sns-event/", SNS_CONTENT_TYPE, "-", sns_auth),
    ]


def application() -> Any:
    """The WSGI app gunicorn serves (``bench.webhooks:application()``): Django, with the SNS
    certificate URL answered from the benchmark's file instead of the network."""
    from django.core.wsgi import get_wsgi_application

    app = get_wsgi_application()
    from feedback_app.webhooks import sns_signature

    pem = Path(os.environ["BENCH_SNS_CERTIFICATE"]).read_bytes()

    def fetch(url: str, timeout: float = sns_signature.FETCH_TIMEOUT) -> bytes:
        if url != CERTIFICATE_URL:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return pem

    sns_signature.fetch = fetch
    return app


def main() -> None:
    args = common.parse_args(__doc__ or "")
    wrk = shutil.which("wrk")
    if not wrk:
        sys.exit("bench.webhooks: needs wrk (apt-get install wrk)")
    rounds = common.size(args.quick, 3, 1)
    per_run = common.size(args.quick, 800, 200)
    report = common.Report("webhooks", args.quick)
    with common.bench_database("webhooks", SETTINGS), tempfile.TemporaryDirectory() as scratch:
        from feedback_app.testing.sns_fake import SnsPublisher

        publisher = SnsPublisher()
        certificate = Path(scratch) / "sns.pem"
        certificate.write_bytes(publisher.pem)
        rng = random.Random(20261207)
        files: dict[tuple[str, int], tuple[Path, int]] = {}
        expected: dict[str, dict[str, str]] = {}
        for side in sides():
            for run in range(rounds):
                prefix = f"{side.name.replace(' ', '-')}-{run}-"
                common.insert_pending(per_run, provider=side.provider, prefix=prefix)
                lines, finals = requests_for(side, prefix, rng, publisher)
                path = Path(scratch) / f"{prefix}.txt"
                path.write_text("\n".join(lines) + "\n")
                files[side.name, run] = (path, len(lines))
                expected[prefix] = finals

        port = common.free_port()
        server = _gunicorn(port, certificate)
        results: dict[str, list[tuple[float, float]]] = {side.name: [] for side in sides()}
        try:
            base = f"http://127.0.0.1:{port}"
            common.wait_until_up(base, server)
            # wrk waits out its whole -d: the first run of a side gets a generous one (20
            # requests/s), the next ones what the previous took and a third as much again.
            budget = {side.name: 10 + per_run * 3 // 20 for side in sides()}
            for run in range(rounds):
                for side in sides():
                    path, count = files[side.name, run]
                    rate, p50 = _wrk(wrk, base, side, path, count, budget[side.name])
                    results[side.name].append((rate, p50))
                    budget[side.name] = 5 + math.ceil(1.3 * count / rate)
        finally:
            server.terminate()
            server.wait(timeout=30)

        check_applied(expected)
        rates = {name: common.median([r for r, _ in runs]) for name, runs in results.items()}
        for provider in ("twilio", "sns"):
            app, plain = rates[f"{provider} webhook"], rates[f"{provider} plain"]
            label = "Twilio status callbacks" if provider == "twilio" else "SNS SMS events"
            report.add(f"{label}/s, webhook", app, "req/s")
            p50 = common.median([p for _, p in results[f"{provider} webhook"]])
            report.add(f"{label}, webhook latency p50", p50, "ms")
            report.add(f"{label}/s, plain view same SQL", plain, "req/s")
            report.ratio(f"{provider} webhook / plain view (callbacks/s)", app / plain, ">= 0.5")
        mix = sum(len(statuses) for statuses, _ in TWILIO_MIX) / len(TWILIO_MIX)
        report.notes.append(
            f"gunicorn {WORKERS} {WORKER_CLASS} workers (1 thread); wrk {CONNECTIONS} "
            f"connections; per run and side {per_run} messages, {mix:.2f} callbacks each "
            "(sent/delivered in both orders, duplicates, undelivered), shuffled; "
            f"{rounds} run(s) per side, alternating; every message checked at its final status "
            "with one delivery event; the SNS target >= 0.5 is this benchmark's own "
            "(the issue names Twilio's)"
        )
    report.write()


def requests_for(
    side: Side, prefix: str, rng: random.Random, publisher: Any
) -> tuple[list[str], dict[str, str]]:
    """The shuffled request lines (``path<TAB>signature<TAB>body``) of one run of ``side``, and
    the final status of each of its messages."""
    from feedback_app.models import Message

    messages = Message.objects.filter(provider_message_id__startswith=prefix).order_by("pk")
    lines: list[str] = []
    finals: dict[str, str] = {}
    for index, (provider_id, pk) in enumerate(messages.values_list("provider_message_id", "pk")):
        if side.provider == "twilio":
            statuses, final = TWILIO_MIX[index % len(TWILIO_MIX)]
            lines += [twilio_line(side.path, provider_id, status) for status in statuses]
        else:
            statuses, final = SNS_MIX[index % len(SNS_MIX)]
            for status in statuses:
                if status == "again":
                    lines.append(lines[-1])
                else:
                    lines.append(sns_line(side.path, provider_id, str(pk), status, publisher))
        finals[provider_id] = final
    rng.shuffle(lines)
    return lines, finals


def twilio_line(path: str, sid: str, status: str) -> str:
    from twilio.request_validator import RequestValidator

    from bench.webhook_settings import PUBLIC_URL, TWILIO_AUTH_TOKEN

    params = {
        "AccountSid": "AC" + "0" * 32,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": "+14155550123",
    }
    if status == "undelivered":
        params["ErrorCode"] = "30003"
    signature = RequestValidator(TWILIO_AUTH_TOKEN).compute_signature(PUBLIC_URL + path, params)
    return f"{path}\t{signature}\t{urlencode(params)}"


def sns_line(path: str, provider_id: str, our_id: str, event_type: str, publisher: Any) -> str:
    from bench.webhook_settings import SNS_TOPIC_ARN

    record = {
        "eventType": event_type,
        "eventVersion": "1.0",
        "eventTimestamp": 1796601600123,
        "isFinal": event_type != "TEXT_SENT",
        "originationPhoneNumber": "+12065550152",
        "destinationPhoneNumber": "+12015550123",
        "isoCountryCode": "US",
        "messageId": provider_id,
        "messageStatus": event_type.removeprefix("TEXT_"),
        "messageStatusDescription": "bench",
        "context": {"feedback_app_id": our_id},
    }
    envelope = publisher.notification(
        topic_arn=SNS_TOPIC_ARN, message=json.dumps(record), certificate_url=CERTIFICATE_URL
    )
    return f"{path}\t-\t{json.dumps(envelope)}"


def check_applied(expected: dict[str, dict[str, str]]) -> None:
    """Exit unless every message is at its final status with exactly one delivery event."""
    from django.db.models import Count, Q

    from feedback_app.models import Message

    for prefix, finals in expected.items():
        rows = Message.objects.filter(provider_message_id__startswith=prefix).annotate(
            delivery_events=Count("events", filter=Q(events__kind="delivery"))
        )
        found = {
            pid: (status, events)
            for pid, status, events in rows.values_list(
                "provider_message_id", "delivery_status", "delivery_events"
            )
        }
        wrong = [pid for pid, final in finals.items() if found.get(pid) != (final, 1)]
        if wrong:
            sys.exit(
                f"bench.webhooks: {len(wrong)} message(s) of {prefix} not applied as sent, "
                f"e.g. {wrong[0]}: {found.get(wrong[0])} instead of ({finals[wrong[0]]}, 1)"
            )


def _wrk(
    wrk: str, base: str, side: Side, requests: Path, count: int, seconds: int
) -> tuple[float, float]:
    """Requests per second and p50 latency (ms) of one wrk run through ``requests``, given at
    most ``seconds``; exits on any non-2xx answer or when not every request was answered.

    The rate is the script's (all answers over first request to last answer): wrk's own
    divides by its whole ``-d`` duration, which it waits out after the threads stopped.
    """
    script = Path(__file__).with_name("webhooks.lua")
    output = subprocess.run(  # noqa: S603 - wrk from PATH, arguments of this benchmark
        [wrk, f"-t{CONNECTIONS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency"]
        + ["-s", str(script), base, "--", str(requests), str(CONNECTIONS), side.content_type]
        + [side.signature_header, side.authorization],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in output or "Socket errors" in output:
        sys.exit(f"bench.webhooks: errors under load ({side.name}):\n{output}")
    answered = int(re.search(r"(\d+) requests in", output).group(1))
    elapsed = re.search(r"Elapsed: ([\d.]+)", output)
    if answered != count or elapsed is None:
        sys.exit(
            f"bench.webhooks: {side.name}: {answered} of {count} requests answered in "
            f"{seconds} s:\n{output}"
        )
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", output)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p50.group(2)]
    return count / float(elapsed.group(1)), float(p50.group(1)) * scale


def _gunicorn(port: int, certificate: Path) -> subprocess.Popen:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    return subprocess.Popen(  # noqa: S603 - gunicorn beside this interpreter
        [str(gunicorn), "bench.webhooks:application()", f"--workers={WORKERS}"]
        + [f"--worker-class={WORKER_CLASS}", "--threads=1"]
        + [f"--bind=127.0.0.1:{port}", "--log-level=warning"],
        cwd=common.ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "BENCH_SNS_CERTIFICATE": str(certificate),
        },
    )


if __name__ == "__main__":
    main()
