"""What the demo's fakes share to play a carrier: which numbers never get a message, timers, and
the callback a fake posts to the app's webhook."""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.request
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)


def unreachable(to: str, rate: float) -> bool:
    """Whether messages to ``to`` end undelivered: its hash, read as a fraction of 1, is below
    ``rate``. The same answer in every process and run, as a phone that is off: a demo or a test
    that sends to a reachable number always sees it delivered."""
    draw = int.from_bytes(hashlib.sha256(to.encode()).digest()[:8]) / 2**64
    return draw < rate


def call_later(delay: float, function: Callable[..., Any], *args: Any) -> None:
    """Run ``function(*args)`` after ``delay`` seconds on a daemon thread."""
    timer = threading.Timer(delay, function, args)
    timer.daemon = True
    timer.start()


def post(url: str, data: bytes, headers: dict[str, str]) -> int | None:
    """POST ``data`` to ``url`` (a webhook the app gave or configured); the HTTP status, or None
    when the request failed (logged)."""
    request = urllib.request.Request(url, data=data, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            response.read()
            return response.status
    except urllib.error.HTTPError as exc:
        logger.warning("callback to %s answered %s", url, exc.code)
        return exc.code
    except OSError as exc:
        logger.warning("callback to %s failed: %s", url, exc)
        return None
