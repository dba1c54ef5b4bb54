"""Settings for the real django-q2 cluster that tests/test_qcluster.py runs in a subprocess (and
for django-tasks-db's ``db_worker`` with FEEDBACK_QUEUE=django_tasks, in tests/faults).

The test settings, with the cluster not in sync mode, the Redis broker, the test process's database
(``FEEDBACK_TEST_DB_NAME``: pytest-django's test database) and a queue of its own per test run
(``FEEDBACK_TEST_QUEUE``). Reports go to a recording provider writing to
``FEEDBACK_TEST_REPORTS``.
"""

from __future__ import annotations

import os
from typing import Any

from tests.settings import *  # noqa: F403
from tests.settings import DATABASES, FEEDBACK_APP, Q_CLUSTER

#: Seconds a worker holds a call; short, so a killed worker's calls are taken over quickly.
CLAIM_TIMEOUT = 5


def cluster_feedback_app(
    base: dict[str, Any], reports_path: str, queue: str, choice: str = "django_q"
) -> dict[str, Any]:
    """FEEDBACK_APP for both sides: the test process that enqueues and the worker that works.

    ``choice`` is the QUEUE: django-q2 on cluster ``queue``, or django.tasks on the "database"
    backend of the test settings (django-tasks-db, whose ``db_worker`` the tests start).
    """
    return {
        **base,
        "PROVIDERS": {
            **base["PROVIDERS"],
            "recording": {
                "BACKEND": "tests.recording_provider.RecordingProvider",
                "PATH": reports_path,
                "DELAY": 0.1,
            },
        },
        "QUEUE": choice,
        "DJANGO_Q_CLUSTER": queue,
        "TASKS_BACKEND": "database",
        "CLAIM_TIMEOUT": CLAIM_TIMEOUT,
        "SWEEP_GRACE": 1,
    }


_queue = os.environ.get("FEEDBACK_TEST_QUEUE", "feedback_test")

if os.environ.get("FEEDBACK_TEST_DB_NAME"):
    DATABASES["default"]["NAME"] = os.environ["FEEDBACK_TEST_DB_NAME"]

FEEDBACK_APP = cluster_feedback_app(
    FEEDBACK_APP,
    os.environ.get("FEEDBACK_TEST_REPORTS", "reports.jsonl"),
    _queue,
    os.environ.get("FEEDBACK_QUEUE") or "django_q",
)

# "name" stays the one the test process signs tasks with; "cluster_name" is the queue.
# timeout < CLAIM_TIMEOUT < retry, as in the example project.
Q_CLUSTER = {
    **{key: value for key, value in Q_CLUSTER.items() if key not in ("sync", "orm", "poll")},
    "cluster_name": _queue,
    "redis": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    "workers": 2,
    "timeout": CLAIM_TIMEOUT - 1,
    "retry": CLAIM_TIMEOUT + 1,
    "log_level": "WARNING",
}
