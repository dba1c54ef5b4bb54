"""A provider backend that records every report in a JSON-lines file, for tests that run a real
django-q2 cluster in another process.

Every call is appended (one line each), so a test sees how often the provider was reached; like a
real provider it honours idempotency keys: a repeated key is logged with ``"duplicate": true`` and
not counted as a new report.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from feedback_app.providers.base import Provider, SendResult


class RecordingProvider(Provider):
    """Options: ``PATH`` (the JSON-lines file) and ``DELAY`` (seconds spent after recording, so a
    worker killed mid-batch is likely to have reached the provider without recording success)."""

    reports = frozenset({"confirmed", "failed"})

    @property
    def path(self) -> Path:
        return Path(self.config["PATH"])

    def send(self, *, to, body, sender, channel, message_id, **options) -> SendResult:
        return SendResult(provider_message_id=f"REC{message_id}")

    def report_feedback(
        self, *, provider_message_id: str, outcome: str, idempotency_key: str
    ) -> None:
        with open(self.path, "a+", encoding="utf-8") as handle:
            # The lock makes "read the keys, then append" atomic across worker processes.
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                handle.seek(0)
                seen = {json.loads(line)["idempotency_key"] for line in handle if line.strip()}
                entry = {
                    "provider_message_id": provider_message_id,
                    "outcome": outcome,
                    "idempotency_key": idempotency_key,
                    "duplicate": idempotency_key in seen,
                    "pid": os.getpid(),
                }
                handle.write(json.dumps(entry) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        delay = float(self.config.get("DELAY", 0))
        if delay:
            time.sleep(delay)


def read_reports(path: Path | str) -> list[dict[str, Any]]:
    """Every call the provider received, in order (duplicates included)."""
    path = Path(path)
    if not path.exists():
        return []
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
