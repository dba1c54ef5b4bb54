"""Fault: the worker (a qcluster with its workers, or django-tasks-db's db_worker) is SIGKILLed
while inside a provider call: the provider has the report, the outbox still has the call in
flight (and db_worker's task row stays RUNNING). What survives: after the claim runs out, the
sweep hands the call to a new worker, which delivers it again with the same idempotency key; the
provider, honouring the key, accepts each outcome exactly once, and no report is lost.
"""

from __future__ import annotations

import time

import pytest

from feedback_app import services, tasks
from feedback_app.states import CallState

from ..factories import make_message
from ..qcluster_settings import CLAIM_TIMEOUT
from ..recording_provider import read_reports
from ..test_qcluster import assert_each_reported_exactly_once, wait_until
from .conftest import all_succeeded, call_states

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

#: The queue, with the fixtures that enqueue on it and start its worker.
QUEUES = [
    pytest.param(
        ("enqueue_to_redis", "start_cluster"),
        marks=[pytest.mark.django_q, pytest.mark.redis],
        id="django_q",
    ),
    pytest.param(("enqueue_to_database", "start_db_worker"), id="django_tasks"),
]

#: Seconds the provider takes per call in the first cluster: the window the kill lands in
#: (below the cluster's task timeout, so the kill, not the timeout, cuts the call short).
SLOW_PROVIDER = 3.0


@pytest.mark.parametrize("queue", QUEUES)
def test_sigkill_during_a_provider_call_delivers_once_after_the_sweep(queue, request, reports_path):
    enqueue, start_worker = queue
    request.getfixturevalue(enqueue)
    start_cluster = request.getfixturevalue(start_worker)
    cluster = start_cluster(provider_delay=SLOW_PROVIDER)
    messages = [make_message(provider="recording") for _ in range(4)]
    for message in messages:
        assert services.confirm(message) is True
    wait_until(lambda: len(read_reports(reports_path)) >= 1, "a worker is in a call", cluster)

    # Injected: SIGKILL of the cluster while its workers are inside the provider call.
    cluster.kill()
    reached = {r["provider_message_id"] for r in read_reports(reports_path)}
    assert call_states(messages)[CallState.SUCCEEDED] == 0
    assert call_states(messages)[CallState.IN_FLIGHT] >= len(reached) >= 1

    cluster = start_cluster()
    # The killed worker's claim must run out before the sweep may hand its call on.
    time.sleep(CLAIM_TIMEOUT)

    def swept_and_done() -> bool:
        tasks.sweep_outbox()
        return all_succeeded(messages)

    wait_until(swept_and_done, "the sweep has delivered every call", cluster)

    # Survived: every outcome accepted once; the calls cut short were sent again with their
    # own key, and the provider recognised them as duplicates.
    assert_each_reported_exactly_once(messages, reports_path)
    duplicates = {r["provider_message_id"] for r in read_reports(reports_path) if r["duplicate"]}
    assert duplicates == reached
