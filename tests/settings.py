"""Test settings: the example project's, with the task queue run inline and a fixed hash key.

DATABASE_URL and REDIS_URL are honoured exactly as in the example project, so ``make test``
runs the same suite on SQLite and, when they are set, on PostgreSQL with Redis.
"""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import Q_CLUSTER

FEEDBACK_APP = {
    "HASH_KEY": "test-hash-key-0123456789abcdef",
    "PROVIDERS": {
        "locmem": {"BACKEND": "feedback_app.providers.locmem.LocmemProvider"},
        "silent": {"BACKEND": "tests.backends.SilentProvider"},
    },
    "FEEDBACK_WINDOWS": {"*": 600, "locmem:login": 60},
}

# Tasks run in the calling process; tests that need a real cluster start one themselves.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# One test database per test process, so parallel runs never share or drop each other's.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not the in-memory default: shared-cache memory databases lock per table and fail
    # at once instead of waiting, so concurrency tests would not see what a deployment sees.
    _build = BASE_DIR / "build"  # noqa: F405
    _build.mkdir(exist_ok=True)  # a fresh clone has none
    _test_name = str(_build / f"test-db-{os.getpid()}.sqlite3")
else:
    _test_name = f"test_{DATABASES['default']['NAME']}_{os.getpid()}"  # noqa: F405
DATABASES["default"]["TEST"] = {"NAME": _test_name}  # noqa: F405
