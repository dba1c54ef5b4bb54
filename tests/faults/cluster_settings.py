"""Settings of the real django-q2 cluster the fault tests run: tests/qcluster_settings.py, with
the recording provider's time per call taken from ``FEEDBACK_TEST_PROVIDER_DELAY`` (long, so a
test can kill a worker while it is inside the provider call)."""

from __future__ import annotations

import os

from tests.qcluster_settings import *  # noqa: F403
from tests.qcluster_settings import FEEDBACK_APP

FEEDBACK_APP["PROVIDERS"]["recording"] = {
    **FEEDBACK_APP["PROVIDERS"]["recording"],
    "DELAY": float(os.environ.get("FEEDBACK_TEST_PROVIDER_DELAY", "0.1")),
}
