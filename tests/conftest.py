import ipaddress
import os
import socket

import pytest
from django.conf import settings
from django.db import connection, connections
from django.utils import timezone

from feedback_app.providers import locmem

from .clock import Clock

_real_connect = socket.socket.connect


def _loopback_only(self: socket.socket, address: object) -> object:
    """No test may reach the network: a stray request to a real provider host is a failure."""
    if isinstance(address, tuple) and self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        try:
            local = ipaddress.ip_address(host).is_loopback
        except ValueError:
            local = host == "localhost"
        if not local:
            raise RuntimeError(f"test tried to connect to {host!r}: only loopback is allowed")
    return _real_connect(self, address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket.socket, "connect", _loopback_only)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """``timezone.now`` frozen at the real now; move it with ``clock.advance(...)``."""
    clock = Clock(timezone.now())
    monkeypatch.setattr(timezone, "now", clock)
    return clock


@pytest.fixture
def window_start(clock: Clock) -> Clock:
    """The clock a second into a UTC day: the guard counts in fixed windows (divisors of a day),
    and a window that ended mid-test would restart a count the test relies on."""
    day = 86400
    clock.now = clock.now.fromtimestamp(clock.now.timestamp() // day * day + 1, tz=clock.now.tzinfo)
    return clock


@pytest.fixture(scope="session", autouse=True)
def _database_features(django_db_setup, django_db_blocker):
    """Django 6.1 runs the model checks against every alias (``run_checks()`` with no
    ``databases``), and JSONField's reads a feature that SQLite answers with a query: read each
    alias's once, before any test, so a test running the checks queries no database it did not
    ask for (the ``reports`` alias of tests/settings.py)."""
    with django_db_blocker.unblock():
        for alias in connections:
            assert connections[alias].features.supports_json_field
    yield


@pytest.fixture(autouse=True)
def _fresh_locmem():
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture(autouse=True)
def _fresh_guard():
    """The guard's counters (the cache) and its copy of the blocks start empty in each test."""
    from django.core.cache import caches

    from feedback_app import blocks

    caches["default"].clear()
    blocks.forget()
    yield
    blocks.forget()


def _missing_services(item: pytest.Item) -> list[str]:
    missing = []
    if item.get_closest_marker("postgres") and connection.vendor != "postgresql":
        missing.append("PostgreSQL (DATABASE_URL)")
    if item.get_closest_marker("replica") and "replica" not in settings.DATABASES:
        missing.append("a streaming replica of it (REPLICA_DATABASE_URL)")
    if item.get_closest_marker("redis") and not os.environ.get("REDIS_URL"):
        missing.append("Redis (REDIS_URL)")
    if item.get_closest_marker("browser") and not os.path.exists("/usr/bin/chromium"):
        missing.append("Chromium (/usr/bin/chromium)")
    return missing


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Service tests skip where the service is absent, and fail when it is required (CI)."""
    missing = _missing_services(item)
    if not missing:
        return
    reason = f"needs {' and '.join(missing)}"
    if os.environ.get("FEEDBACK_REQUIRE_SERVICES"):
        pytest.fail(f"{reason}, and FEEDBACK_REQUIRE_SERVICES is set", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On django.tasks (FEEDBACK_QUEUE=django_tasks) django-q2 is not an installed app: the tests
    of django-q2 itself (marked django_q) are deselected, not skipped, and the summary says so."""
    if settings.FEEDBACK_APP.get("QUEUE") != "django_tasks":
        return
    deselected = [item for item in items if item.get_closest_marker("django_q")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("django_q")]
    config.stash[_DJANGO_Q_DESELECTED] = len(deselected)


_DJANGO_Q_DESELECTED = pytest.StashKey[int]()


def pytest_terminal_summary(
    terminalreporter: pytest.TerminalReporter, config: pytest.Config
) -> None:
    count = config.stash.get(_DJANGO_Q_DESELECTED, None)
    if count is not None:
        terminalreporter.write_line(
            f"feedback_app: QUEUE is django_tasks; {count} tests of django-q2 (marked django_q) "
            "deselected: django-q2 is not an installed app in this run."
        )
