"""The periodic jobs and the django-q2 deliver task. Each is small: the work lives in ``outbox``
and ``services``. django-q2 schedules run the jobs, or ``manage.py feedback_worker`` does."""

from __future__ import annotations

from . import outbox, polling, services


def deliver_call(call_id: int) -> str | None:
    """Deliver one provider call (enqueued on commit and by the sweep)."""
    return outbox.deliver(call_id)


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
