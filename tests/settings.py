"""Test settings: the example project's, with the task queue run inline and a fixed hash key.

DATABASE_URL and REDIS_URL are honoured exactly as in the example project, so ``make test``
runs the same suite on SQLite and, when they are set, on PostgreSQL with Redis.
FEEDBACK_QUEUE=django_tasks runs it on django.tasks, with django-q2 out of INSTALLED_APPS.
"""

import os
from importlib.util import find_spec

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

# django.tasks (Django 6) or its backport (Django 5.2): "default" runs tasks inline, as the
# cluster's sync mode does; "database" is django-tasks-db's, for tests that run its worker.
_TASKS_API = "django.tasks" if find_spec("django.tasks") else "django_tasks"
TASKS = {
    "default": {"BACKEND": f"{_TASKS_API}.backends.immediate.ImmediateBackend"},
    "database": {"BACKEND": "django_tasks_db.DatabaseBackend"},
}
INSTALLED_APPS = [*INSTALLED_APPS, "django_tasks_db"]  # noqa: F405

# The queue the suite runs on (CI runs it on both); tests of django-q2 itself are marked
# django_q and deselected on django_tasks, where django-q2 is not an installed app.
FEEDBACK_APP["QUEUE"] = os.environ.get("FEEDBACK_QUEUE") or "django_q"
if FEEDBACK_APP["QUEUE"] == "django_tasks":
    INSTALLED_APPS = [app for app in INSTALLED_APPS if app != "django_q"]

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

# A second alias for FEEDBACK_APP["REPORTS_DATABASE"]: a test mirror of default, so tests that
# point the reports at it read the test database through a connection of its own (and see only
# committed rows: those tests are transactional). The suite itself reports on "default".
DATABASES["reports"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}  # noqa: F405

# REPLICA_DATABASE_URL (CI: a streaming replica of the PostgreSQL server, .ci/run): the alias
# "replica" for the tests marked replica. Declared a test mirror of default, so the test runner
# neither creates nor migrates it and gives it the test database's name (a mirror takes only
# NAME from default): it keeps the replica's host and port, where that database arrives by
# replication.
if os.environ.get("REPLICA_DATABASE_URL") and DATABASES["default"]["ENGINE"].endswith(  # noqa: F405
    "postgresql"
):
    import dj_database_url

    DATABASES["replica"] = {  # noqa: F405
        **dj_database_url.parse(os.environ["REPLICA_DATABASE_URL"]),
        "TEST": {"MIRROR": "default"},
    }
