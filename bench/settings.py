"""Settings of the benchmarks: the example project's, as a deployment would run them.

DEBUG is off (Django keeps every query in memory with it on), throttles are out of the way of
the load generator, the URLconf adds the plain-Django baseline view of bench/urls.py, and tasks
go to a queue of the benchmark's own (BENCH_QUEUE), never to one a demo or a test reads.
"""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import FEEDBACK_APP, LOGGING, Q_CLUSTER, REST_FRAMEWORK

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "bench.urls"

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {
        **REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
        "feedback_app.confirm": "100000000/second",
    },
}

# Only warnings: a log line per request would be part of what is measured.
LOGGING = {**LOGGING, "loggers": {"feedback_app": {"handlers": ["console"], "level": "WARNING"}}}

_queue = os.environ.get("BENCH_QUEUE", "bench_feedback")
FEEDBACK_APP = {**FEEDBACK_APP, "DJANGO_Q_CLUSTER": _queue}
Q_CLUSTER = {**Q_CLUSTER, "cluster_name": _queue, "log_level": "WARNING"}

# A provider that takes no "failed" report (like Twilio): expiring its messages writes the
# transition and the event only. The base class is enough: nothing is sent to it.
FEEDBACK_APP["PROVIDERS"] = {
    **{key: dict(options) for key, options in FEEDBACK_APP["PROVIDERS"].items()},
    "noreport": {"BACKEND": "feedback_app.providers.base.Provider"},
}
# The fakes' SNS certificate is trusted with DEBUG only (a system check refuses it otherwise,
# and the cluster would not start); no benchmark receives SNS notifications.
FEEDBACK_APP["PROVIDERS"].get("aws_sms", {}).pop("SNS_DEV_CERTIFICATE_URLS", None)
