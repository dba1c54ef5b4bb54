"""The periodic jobs and the django-q2 deliver tasks. Each is small: the work lives in ``outbox``
and ``services``. django-q2 schedules run the jobs, or ``manage.py feedback_worker`` does."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Sequence

from . import outbox, polling, queue, services
from .conf import app_settings

logger = logging.getLogger(__name__)

#: Share of the task's time limit a batch may use before it stops starting calls.
BATCH_TIME_SHARE = 0.5


def deliver_call(call_id: int) -> str | None:
    """Deliver one provider call (enqueued on commit and by the sweep)."""
    return outbox.deliver(call_id)


def deliver_calls(call_ids: Sequence[int]) -> dict[str, int]:
    """Deliver a few calls one after another (a hand-off of many: expiry, the sweep, a retry).

    Each call is claimed on its own as it starts, so CLAIM_TIMEOUT bounds one call, not the
    batch; what bounds the batch is the cluster's ``timeout``, which would kill the task in the
    middle of a call. So a call starts only while the time spent plus the slowest call so far
    stays within BATCH_TIME_SHARE of that limit; the rest goes back to the queue as new tasks
    (or, if that fails, to the sweep). One call's error is logged and the batch goes on: the
    call stays in the outbox for the sweep. Returns how many calls ended in each state.
    """
    budget = _time_limit() * BATCH_TIME_SHARE
    started = time.monotonic()
    slowest = 0.0
    outcomes: Counter[str] = Counter()
    for index, call_id in enumerate(call_ids):
        spent = time.monotonic() - started
        if index and spent + slowest > budget:
            rest = list(call_ids[index:])
            queue.enqueue(rest)
            outcomes["handed_back"] += len(rest)
            break
        try:
            outcomes[outbox.deliver(call_id) or "skipped"] += 1
        except Exception:  # the database, not the provider (deliver handles that): sweep's turn
            logger.exception("feedback_app: delivering call %s failed", call_id)
            outcomes["error"] += 1
        slowest = max(slowest, time.monotonic() - started - spent)
    return dict(outcomes)


def _time_limit() -> float:
    """Seconds a django-q2 task may run: ``timeout``, else ``retry`` (when an ORM broker hands
    an unacknowledged task to another worker), else CLAIM_TIMEOUT."""
    from django_q.conf import Conf

    return float(Conf.TIMEOUT or Conf.RETRY or app_settings.CLAIM_TIMEOUT)


def sweep_outbox() -> int:
    """Schedule: re-enqueue calls that are due or stuck (lost task, dead worker)."""
    return outbox.sweep()


def expire_overdue() -> int:
    """Schedule: expire messages past their feedback deadline."""
    return services.expire_overdue()


def poll_statuses() -> int:
    """Schedule: ask polling providers about messages whose status is still open."""
    return polling.poll_open_statuses()


def purge_idempotency() -> int:
    """Schedule: delete Idempotency-Key records older than IDEMPOTENCY_TTL."""
    from .api.idempotency import purge_expired

    return purge_expired()


def block_pumped_prefixes() -> int:
    """Schedule: block prefixes whose recent sends do not convert (the SMS-pumping guard)."""
    from .blocks import block_pumped_prefixes

    return len(block_pumped_prefixes())
