"""Test settings: the example project's, with the task queue run inline and a fixed hash key.

DATABASE_URL and REDIS_URL are honoured exactly as in the example project, so ``make test``
runs the same suite on SQLite and, when they are set, on PostgreSQL with Redis.
"""

from example_project.settings import *  # noqa: F403
from example_project.settings import Q_CLUSTER

FEEDBACK_APP = {
    "HASH_KEY": "test-hash-key-0123456789abcdef",
    "PROVIDERS": {
        "locmem": {"BACKEND": "feedback_app.providers.locmem.LocmemProvider"},
        "silent": {"BACKEND": "tests.providers.SilentProvider"},
    },
    "FEEDBACK_WINDOWS": {"*": 600, "locmem:login": 60},
}

# Tasks run in the calling process; tests that need a real cluster start one themselves.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
