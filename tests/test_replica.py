"""The dashboard on a real PostgreSQL streaming replica (REPLICA_DATABASE_URL; CI starts one on
port 5433): it reads the replica, shows what the replica has replayed and when that was ("Data
as of"), and keeps working while the replica lags (replay paused), catching up after.

The alias "replica" (tests/settings.py) is a test mirror of default on the replica's server:
the test database created on the primary reaches it by replication.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import OperationalError, connections
from django.urls import reverse
from django.utils import timezone

from feedback_app import rollups, services
from feedback_app.states import Delivery

from .admin.test_dashboard import DASHBOARD, reader
from .api.conftest import API, make_user, token_client
from .factories import make_message
from .test_reports_database import app_tables, queries_on

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.replica,
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]

#: Seconds the replica may take to replay what the primary wrote (a loaded CI machine).
CATCH_UP = 60


def fetch(alias: str, sql: str) -> object:
    with connections[alias].cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + CATCH_UP
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"the replica did not {what} within {CATCH_UP} s")
        time.sleep(0.1)


def caught_up() -> None:
    """Wait until the replica has replayed everything the primary has written so far."""
    target = fetch("default", "SELECT pg_current_wal_lsn()::text")

    def replayed() -> bool:
        try:
            with connections["replica"].cursor() as cursor:
                cursor.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                return bool(cursor.fetchone()[0])
        except OperationalError:  # the test database has not reached the replica yet
            connections["replica"].close()
            return False

    wait_for(replayed, "catch up")


@pytest.fixture
def replica(settings):
    """The reports read the replica; it has replayed the test database, and resumes replay
    whatever the test did."""
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "REPORTS_DATABASE": "replica"}
    caught_up()
    assert fetch("replica", "SELECT pg_is_in_recovery()") is True
    yield
    fetch("replica", "SELECT pg_wal_replay_resume()::text")


def pause_replay() -> None:
    fetch("replica", "SELECT pg_wal_replay_pause()::text")
    wait_for(
        lambda: fetch("replica", "SELECT pg_get_wal_replay_pause_state()") == "paused", "pause"
    )


def send(count: int, *, confirmed: int = 0) -> None:
    sent_at = timezone.now() - timedelta(minutes=30)
    for index in range(count):
        message = make_message(sent_at=sent_at, delivery_status=Delivery.DELIVERED)
        if index < confirmed:
            services.confirm(message)


def test_the_dashboard_reads_the_replica_and_tolerates_its_lag(replica, client, django_user_model):
    client.force_login(reader(django_user_model))
    api = token_client(make_user("view_report"))
    dashboard = reverse(DASHBOARD)
    send(3, confirmed=1)
    rollups.refresh()
    caught_up()

    with queries_on("default", "replica") as queries:
        current = client.get(dashboard)
    assert current.status_code == 200
    assert current.context["totals"].attempted == 3
    assert current.context["totals"].confirmed == 1
    assert app_tables(queries["default"]) == set()
    assert "feedback_app_rollupstate" in app_tables(queries["replica"])
    # A standby: the data is as of what it replayed, at least the refresh it holds.
    first_as_of = current.context["data_as_of"]
    assert first_as_of is not None and first_as_of >= rollups.last_refresh()
    assert "Data as of" in current.text

    pause_replay()
    send(2, confirmed=2)
    rollups.refresh()
    refreshed = rollups.last_refresh()
    lagging = client.get(dashboard)
    # The page still renders, with what the replica holds and the older time it holds it as of.
    assert lagging.status_code == 200
    assert lagging.context["totals"].attempted == 3
    assert lagging.context["totals"].confirmed == 1
    lagging_as_of = lagging.context["data_as_of"]
    assert first_as_of <= lagging_as_of < refreshed
    assert "Data as of" in lagging.text
    stats = api.get(f"{API}/stats/")
    assert stats.status_code == 200
    assert stats.json()["totals"]["attempted"] == 3

    fetch("replica", "SELECT pg_wal_replay_resume()::text")
    caught_up()
    caught = client.get(dashboard)
    assert caught.status_code == 200
    assert caught.context["totals"].attempted == 5
    assert caught.context["totals"].confirmed == 3
    assert caught.context["data_as_of"] >= refreshed
    assert api.get(f"{API}/stats/").json()["totals"]["attempted"] == 5
