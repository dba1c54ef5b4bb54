"""``Idempotency-Key`` on track and send: replays, conflicts, and what is kept."""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone
from rest_framework.authentication import BaseAuthentication

from feedback_app.api.idempotency import _take_over, body_fingerprint, purge_expired
from feedback_app.api.views import MessageViewSet
from feedback_app.models import IdempotencyRecord, Message
from feedback_app.providers import RetryableError, locmem
from feedback_app.providers.locmem import LocmemProvider
from feedback_app.tokens import confirmation_token

from ..factories import NUMBERS
from .conftest import API, json_client, make_user, token_client

pytestmark = pytest.mark.django_db

SEND = f"{API}/messages/send/"
TRACK = f"{API}/messages/"
BODY = {"provider": "locmem", "to": NUMBERS["US"], "body": "Your code is 583920"}


@pytest.fixture
def sender(db):
    return token_client(make_user("send_message", "add_message"))


def test_a_retry_with_the_same_key_returns_the_first_response_without_sending(sender):
    first = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    again = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first
    assert len(locmem.outbox) == 1
    assert Message.objects.count() == 1


def test_the_same_json_written_differently_is_the_same_body(sender):
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    reordered = json.dumps({"body": BODY["body"], "to": BODY["to"], "provider": "locmem"}, indent=2)
    again = sender.post(
        SEND, reordered, content_type="application/json", HTTP_IDEMPOTENCY_KEY="k-1"
    )
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    assert len(locmem.outbox) == 1


def test_the_same_key_with_another_body_is_422(sender):
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    other = sender.post(SEND, {**BODY, "body": "Your code is 111111"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert len(locmem.outbox) == 1


def test_different_keys_send_twice(sender):
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-2")
    assert len(locmem.outbox) == 2


def test_no_key_no_idempotency(sender):
    sender.post(SEND, BODY)
    sender.post(SEND, BODY)
    assert len(locmem.outbox) == 2
    assert not IdempotencyRecord.objects.exists()


def test_keys_are_per_user(db):
    alice = token_client(make_user("send_message"))
    bob = token_client(make_user("send_message"))
    alice.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="shared")
    response = bob.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="shared")
    assert response.status_code == 201 and "Idempotent-Replayed" not in response
    assert len(locmem.outbox) == 2


def test_keys_are_per_endpoint(sender):
    tracked = {"provider": "locmem", "provider_message_id": "SM1", "to": NUMBERS["US"]}
    assert sender.post(TRACK, tracked, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k").status_code == 201
    assert len(locmem.outbox) == 1


def test_track_replays_instead_of_reporting_a_duplicate(sender):
    tracked = {"provider": "locmem", "provider_message_id": "SM1", "to": NUMBERS["US"]}
    first = sender.post(TRACK, tracked, HTTP_IDEMPOTENCY_KEY="t-1")
    again = sender.post(TRACK, tracked, HTTP_IDEMPOTENCY_KEY="t-1")
    assert again.status_code == 201 and again.json() == first.json()
    assert Message.objects.count() == 1


def test_an_error_releases_the_key_so_a_retry_runs_again(sender):
    locmem.fail_next(1, RetryableError("busy", code=503))
    failed = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert failed.status_code == 503
    assert not IdempotencyRecord.objects.exists()
    retried = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert len(locmem.outbox) == 1


def test_a_validation_error_is_not_remembered(sender):
    bad = sender.post(SEND, {**BODY, "to": "+1"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert bad.status_code == 400
    fixed = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert fixed.status_code == 201


def test_a_request_still_running_is_409_and_sends_nothing(db):
    user = make_user("send_message")
    IdempotencyRecord.objects.create(
        key="k-1",
        user=user,
        method="POST",
        path=SEND,
        request_hash=body_fingerprint(BODY),
        created_at=timezone.now(),
    )
    running = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert running.status_code == 409
    assert running.json()["code"] == "idempotency_key_in_use"
    assert not locmem.outbox


@pytest.mark.parametrize("key", ["", " ", "has space", "x" * 256, "caf\u00e9"])
def test_a_malformed_key_is_400(sender, key):
    response = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY=key.encode().decode("latin-1"))
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()["fields"]
    assert not locmem.outbox


def test_the_record_keeps_a_keyed_hash_never_the_body_or_number(sender):
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    record = IdempotencyRecord.objects.get()
    stored = str(IdempotencyRecord.objects.values().get())
    assert "583920" not in stored and NUMBERS["US"] not in stored
    assert len(record.request_hash) == 64
    assert (record.method, record.path, record.response_status) == ("POST", SEND, 201)


def test_an_expired_key_runs_again(sender, settings):
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(days=2))
    again = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again
    assert len(locmem.outbox) == 2
    assert IdempotencyRecord.objects.count() == 1


def test_purge_expired_deletes_only_old_records(sender):
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="old")
    sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="new")
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(days=2)
    )
    assert purge_expired() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_the_same_key_with_another_track_body_is_422_and_writes_nothing(sender):
    tracked = {"provider": "locmem", "provider_message_id": "SM1", "to": NUMBERS["US"]}
    assert sender.post(TRACK, tracked, HTTP_IDEMPOTENCY_KEY="t-1").status_code == 201
    other = sender.post(
        TRACK, {**tracked, "provider_message_id": "SM2"}, HTTP_IDEMPOTENCY_KEY="t-1"
    )
    assert other.status_code == 422
    assert other.json()["code"] == "idempotency_key_reused"
    assert list(Message.objects.values_list("provider_message_id", flat=True)) == ["SM1"]


# -- the confirmation token in a replay ---------------------------------------------------------


def test_a_replay_carries_the_confirmation_token_which_the_record_does_not_keep(sender):
    first = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1").json()
    again = sender.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1").json()
    assert again == first
    assert again["confirmation_token"] == confirmation_token(first["id"])
    record = IdempotencyRecord.objects.get()
    assert "confirmation_token" not in record.response_body
    assert first["confirmation_token"] not in str(IdempotencyRecord.objects.values().get())


# -- a claim whose request never finished ------------------------------------------------------


def _unfinished_claim(user, age: timedelta, body: dict = BODY) -> IdempotencyRecord:
    """What a process that died mid-request leaves behind."""
    return IdempotencyRecord.objects.create(
        key="k-1",
        user=user,
        method="POST",
        path=SEND,
        request_hash=body_fingerprint(body),
        created_at=timezone.now() - age,
    )


def test_a_claim_abandoned_past_the_timeout_is_taken_over_by_the_retry(db):
    user = make_user("send_message")
    _unfinished_claim(user, timedelta(minutes=6))
    retried = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert retried.status_code == 201 and "Idempotent-Replayed" not in retried
    assert len(locmem.outbox) == 1
    record = IdempotencyRecord.objects.get()
    assert record.response_status == 201
    assert timezone.now() - record.created_at < timedelta(minutes=1)
    replayed = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert replayed["Idempotent-Replayed"] == "true"
    assert len(locmem.outbox) == 1


def test_a_claim_younger_than_the_timeout_is_still_409(db):
    user = make_user("send_message")
    _unfinished_claim(user, timedelta(minutes=4))
    assert token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 409
    assert not locmem.outbox


def test_the_claim_timeout_is_a_setting(db, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "IDEMPOTENCY_CLAIM_TIMEOUT": 30}
    user = make_user("send_message")
    _unfinished_claim(user, timedelta(minutes=1))
    assert token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1").status_code == 201


def test_an_abandoned_claim_with_another_body_is_still_422(db):
    user = make_user("send_message")
    _unfinished_claim(user, timedelta(hours=1), body={**BODY, "body": "another"})
    response = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 422
    assert not locmem.outbox


def test_of_two_retries_taking_over_one_claim_only_one_wins(db):
    user = make_user("send_message")
    claim = _unfinished_claim(user, timedelta(hours=1))
    seen_by_first = IdempotencyRecord.objects.get(pk=claim.pk)
    seen_by_second = IdempotencyRecord.objects.get(pk=claim.pk)
    now = timezone.now()
    assert _take_over(seen_by_first, now) is True
    assert _take_over(seen_by_second, now) is False


@pytest.mark.django_db(transaction=True)
def test_a_slow_first_request_taken_over_does_not_overwrite_the_retry(settings):
    """The first request outlived the timeout: the retry's answer is the one kept."""
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "IDEMPOTENCY_CLAIM_TIMEOUT": 1}
    user = make_user("send_message")
    with blocked_first_send() as gate:
        first = run_in_thread(lambda: token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k"))
        assert gate.entered.wait(10)
        IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(seconds=5))
        retried = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k")
        assert retried.status_code == 201
        gate.release.set()
        assert first.result().status_code == 201
    record = IdempotencyRecord.objects.get()
    assert record.response_body["id"] == retried.json()["id"]


# -- authentication that gives no stored user -------------------------------------------------


class StatelessUser:
    """Like simplejwt's TokenUser: authenticated, with an id, but no row of the user model."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    pk = id = "user-42"

    def has_perm(self, perm: str, obj: object = None) -> bool:
        return True

    def get_username(self) -> str:
        return "stateless"


class StatelessAuthentication(BaseAuthentication):
    def authenticate(self, request):
        return (StatelessUser(), None)


@pytest.fixture
def stateless(monkeypatch, db):
    monkeypatch.setattr(MessageViewSet, "authentication_classes", [StatelessAuthentication])
    return json_client()


def test_a_key_from_a_stateless_user_is_a_400_not_a_500(stateless):
    response = stateless.post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 400
    assert response.json()["fields"]["Idempotency-Key"][0]["code"] == "unsupported"
    assert not locmem.outbox
    assert not IdempotencyRecord.objects.exists()


def test_a_stateless_user_without_a_key_is_served(stateless):
    assert stateless.post(SEND, BODY).status_code == 201
    assert len(locmem.outbox) == 1


# -- real concurrency --------------------------------------------------------------------------


class _Gate:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()


@contextlib.contextmanager
def blocked_first_send():
    """The first locmem send waits for ``gate.release``; later ones go straight through."""
    gate = _Gate()
    original = LocmemProvider.send
    calls = itertools.count()

    def send(self, **kwargs):
        if next(calls) == 0:
            gate.entered.set()
            gate.release.wait(10)
        return original(self, **kwargs)

    LocmemProvider.send = send
    try:
        yield gate
    finally:
        LocmemProvider.send = original
        gate.release.set()


def run_in_thread(call):
    """Run ``call`` on its own thread (and database connection); ``.result()`` waits for it."""
    executor = ThreadPoolExecutor(max_workers=1)

    def with_own_connection():
        try:
            return call()
        finally:
            connections.close_all()

    future = executor.submit(with_own_connection)
    executor.shutdown(wait=False)
    return future


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_retry_while_the_first_request_runs_is_409_and_sends_once():
    user = make_user("send_message")
    with blocked_first_send() as gate:
        first = run_in_thread(lambda: token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k"))
        assert gate.entered.wait(10)
        concurrent = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k")
        assert concurrent.status_code == 409
        assert concurrent.json()["code"] == "idempotency_key_in_use"
        gate.release.set()
        assert first.result().status_code == 201
    after = token_client(user).post(SEND, BODY, HTTP_IDEMPOTENCY_KEY="k")
    assert after.status_code == 201 and after["Idempotent-Replayed"] == "true"
    assert after.json() == first.result().json()
    assert len(locmem.outbox) == 1
    assert Message.objects.count() == 1
