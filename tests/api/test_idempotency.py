"""``Idempotency-Key`` on track and send: replays, conflicts, and what is kept."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from feedback_app.api.idempotency import body_fingerprint, purge_expired
from feedback_app.models import IdempotencyRecord, Message
from feedback_app.providers import RetryableError, locmem

from ..factories import NUMBERS
from .conftest import API, make_user, token_client

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
