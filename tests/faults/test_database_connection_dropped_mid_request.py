"""Fault: the database connection is killed (``pg_terminate_backend`` from another connection)
while a request is inside its transaction, between the writes of one state change. What survives:
the caller gets an error, and none of the writes: no message without its event, no event
without its outbox call, no transition without both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.contrib.auth.models import Permission, User
from django.db import DatabaseError, connection
from rest_framework.authtoken.models import Token

from feedback_app import services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.states import Feedback

from ..factories import make_message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def terminate_this_backend() -> None:
    """Kill the server process behind Django's connection, as a failover or an admin would."""
    pid = connection.connection.info.backend_pid
    params = connection.get_connection_params()
    with psycopg.connect(**params, autocommit=True) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def kill_before_saving() -> Iterator[Callable[[type], None]]:
    """``kill_before_saving(Model)``: the connection dies just before the next statement that
    writes a row of Model is sent, after the same transaction's earlier statements.

    On PostgreSQL a state change writes its event and outbox call in the statement of its
    UPDATE (feedback_app/combined_writes.py): killed before it, nothing of it was written.
    """
    armed: list[str] = []

    def arm(model: type) -> None:
        armed.append(f"INSERT INTO {connection.ops.quote_name(model._meta.db_table)}")

    def kill_first(execute: Callable, sql: str, *args: object) -> object:
        for insert in armed:
            if insert in sql:
                armed.remove(insert)
                terminate_this_backend()
                break
        return execute(sql, *args)

    with connection.execute_wrapper(kill_first):
        yield arm


def reconnect() -> None:
    connection.close()


def test_killed_between_the_message_and_its_event_tracks_nothing(kill_before_saving):
    kill_before_saving(MessageEvent)  # injected: after the message INSERT, before its event

    with pytest.raises(DatabaseError):
        make_message(provider_message_id="LMkilled")

    reconnect()
    assert not Message.objects.filter(provider_message_id="LMkilled").exists()
    assert not MessageEvent.objects.exists()


def test_killed_between_the_event_and_the_outbox_call_confirms_nothing(kill_before_saving):
    message = make_message()
    events_before = MessageEvent.objects.count()
    kill_before_saving(ProviderCall)  # injected: after the read, before the call is written

    with pytest.raises(DatabaseError):
        services.confirm(message.pk)

    reconnect()
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING
    assert message.confirmed_at is None
    assert MessageEvent.objects.count() == events_before
    assert not ProviderCall.objects.exists()
    # The connection is usable again and the confirmation can simply be retried.
    assert services.confirm(message.pk) is True
    assert ProviderCall.objects.count() == 1


def test_killed_during_an_api_confirm_the_client_gets_an_error_and_nothing_is_written(
    client, kill_before_saving
):
    user = User.objects.create_user("caller")
    user.user_permissions.add(Permission.objects.get(codename="confirm_message"))
    token = Token.objects.create(user=user)
    message = make_message()
    events_before = MessageEvent.objects.count()
    kill_before_saving(ProviderCall)  # injected: inside the view's confirm transaction
    client.raise_request_exception = False

    response = client.post(
        f"/feedback/api/messages/{message.pk}/confirm/",
        {},
        content_type="application/json",
        headers={"Authorization": f"Token {token.key}"},
    )

    assert response.status_code == 500
    reconnect()
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING
    assert MessageEvent.objects.count() == events_before
    assert not ProviderCall.objects.exists()
