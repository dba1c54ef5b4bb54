"""The Python API: track, send, confirm, fail, record_delivery, and their errors."""

import uuid
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

import feedback_app
from feedback_app import services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import RetryableError, locmem
from feedback_app.states import CallState, Delivery, EventKind, Feedback, Source

from .factories import NUMBERS, make_message

pytestmark = pytest.mark.django_db


def test_track_stores_hash_mask_and_country_not_the_number():
    message = make_message(to=NUMBERS["GB"])
    assert message.country == "GB"
    assert message.recipient_masked == "+44******3456"
    assert len(message.recipient_hash) == 64
    assert NUMBERS["GB"] not in str(Message.objects.filter(pk=message.pk).values().get())


def test_track_sets_deadline_from_the_window_for_provider_and_purpose():
    sent = timezone.now()
    default = make_message(sent_at=sent)
    login = make_message(sent_at=sent, purpose="login")
    assert default.feedback_deadline == sent + timedelta(seconds=600)
    assert login.feedback_deadline == sent + timedelta(seconds=60)


def test_public_api_is_importable_from_the_package():
    assert feedback_app.confirm is services.confirm
    assert feedback_app.fail is services.fail
    assert feedback_app.send is services.send
    assert feedback_app.track is services.track
    assert set(feedback_app.__all__) >= {"confirm", "fail", "send", "track"}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"to": "+1 555"}, "to"),
        ({"to": "not a number"}, "to"),
        ({"to": 14155550123}, "to"),
        ({"provider": "nope"}, "provider"),
        ({"channel": "pigeon"}, "channel"),
        ({"purpose": "not a slug!"}, "purpose"),
        ({"sent_at": "yesterday"}, "sent_at"),
        ({"sent_at": timezone.now().replace(tzinfo=None)}, "sent_at"),
        ({"feedback_requested": "yes"}, "feedback_requested"),
        ({"metadata": ["a"]}, "metadata"),
        ({"sender": "x" * 300}, "sender"),
        ({"provider_message_id": ""}, "provider_message_id"),
    ],
)
def test_bad_input_names_the_field_and_writes_nothing(overrides, field):
    with pytest.raises(ValidationError) as excinfo:
        make_message(**overrides)
    assert field in excinfo.value.message_dict
    assert Message.objects.count() == 0
    assert MessageEvent.objects.count() == 0


def test_tracking_the_same_provider_id_twice_is_refused():
    message = make_message()
    with pytest.raises(ValidationError) as excinfo:
        make_message(provider_message_id=message.provider_message_id)
    assert "provider_message_id" in excinfo.value.message_dict
    assert Message.objects.count() == 1


def test_send_passes_the_body_to_the_provider_and_never_stores_it():
    message = services.send(provider="locmem", to=NUMBERS["DE"], body="Your code is 493817")
    assert locmem.outbox[-1]["body"] == "Your code is 493817"
    assert locmem.outbox[-1]["to"] == NUMBERS["DE"]
    assert locmem.outbox[-1]["message_id"] == str(message.pk)
    assert message.provider_message_id.startswith("LM")
    assert message.delivery_status == Delivery.SENT


def test_send_with_an_invalid_number_calls_no_provider():
    with pytest.raises(ValidationError):
        services.send(provider="locmem", to="+1", body="code 1")
    assert not locmem.outbox
    assert Message.objects.count() == 0


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"purpose": "not a slug!"}, "purpose"),
        ({"purpose": None}, "purpose"),
        ({"purpose": ""}, "purpose"),
        ({"sender": "x" * 300}, "sender"),
        ({"sender": ["+12015550100"]}, "sender"),
        ({"sender": "OTP\x00"}, "sender"),
        ({"source": "pigeon"}, "source"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": "abc"}, "metadata"),
        ({"metadata": {"at": timezone.now()}}, "metadata"),
        ({"metadata": {"score": float("nan")}}, "metadata"),
        ({"metadata": {"flow": "a\x00b"}}, "metadata"),
        ({"channel": "pigeon"}, "channel"),
        ({"body": ""}, "body"),
        ({"message_id": "not-a-uuid"}, "message_id"),
    ],
)
def test_send_validates_everything_before_calling_the_provider(overrides, field):
    fields = {"provider": "locmem", "to": NUMBERS["US"], "body": "Your code is 123456"}
    with pytest.raises(ValidationError) as excinfo:
        services.send(**{**fields, **overrides})
    assert field in excinfo.value.message_dict
    assert not locmem.outbox
    assert Message.objects.count() == 0
    assert MessageEvent.objects.count() == 0


def test_send_with_a_message_id_already_taken_sends_nothing():
    taken = make_message()
    with pytest.raises(ValidationError) as excinfo:
        services.send(provider="locmem", to=NUMBERS["US"], body="code 1", message_id=taken.pk)
    assert excinfo.value.error_dict["message_id"][0].code == "duplicate"
    assert not locmem.outbox
    assert Message.objects.count() == 1


@pytest.mark.parametrize("number", ["+80012345678", "+8823421234", "+870301234567"])
def test_a_non_geographic_number_is_tracked_with_no_country(number):
    # phonenumbers puts them in region "001", which is no ISO country code.
    message = make_message(to=number)
    assert message.country == ""
    assert message.recipient_masked.startswith("+8")
    assert number not in str(Message.objects.filter(pk=message.pk).values().get())


@pytest.mark.parametrize("number", ["+80012345678", "+8823421234"])
def test_a_non_geographic_number_can_be_sent_to(number):
    message = services.send(provider="locmem", to=number, body="code 1")
    assert locmem.outbox[-1]["to"] == number
    message.refresh_from_db()
    assert message.country == ""


def test_send_error_from_the_provider_writes_nothing():
    locmem.fail_next(1)
    with pytest.raises(RetryableError):
        services.send(provider="locmem", to=NUMBERS["US"], body="code 1")
    assert Message.objects.count() == 0


def test_confirm_changes_state_once_and_records_one_event():
    message = make_message()
    assert services.confirm(message) is True
    assert message.feedback == Feedback.CONFIRMED
    assert message.confirmed_at is not None
    assert services.confirm(message) is False
    events = MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK)
    assert [(e.from_value, e.to_value) for e in events] == [("pending", "confirmed")]


def test_confirm_by_public_uuid_string_and_by_provider_id():
    first, second = make_message(), make_message()
    assert services.confirm(str(first.pk)) is True
    assert services.confirm(provider="locmem", provider_message_id=second.provider_message_id)
    assert Message.objects.filter(feedback=Feedback.CONFIRMED).count() == 2


def test_confirm_unknown_message_raises_does_not_exist():
    import uuid

    with pytest.raises(Message.DoesNotExist):
        services.confirm(uuid.uuid4())
    with pytest.raises(Message.DoesNotExist):
        services.confirm(provider="locmem", provider_message_id="missing")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"message": "not-a-uuid"},
        {"message": 12},
        {},
        {"provider": "locmem"},
        {"message": "00000000-0000-0000-0000-000000000000", "provider": "locmem"},
        {"message": "00000000-0000-0000-0000-000000000000", "at": "now"},
        {"message": "00000000-0000-0000-0000-000000000000", "source": "carrier-pigeon"},
    ],
)
def test_confirm_with_malformed_arguments_raises_validation_error(kwargs):
    with pytest.raises(ValidationError):
        services.confirm(**kwargs)


def test_fail_then_confirm_is_a_late_conversion():
    message = make_message()
    assert services.fail(message) is True
    assert message.feedback == Feedback.FAILED
    assert services.fail(message) is False
    assert services.confirm(message) is True
    assert message.feedback == Feedback.CONFIRMED
    assert message.confirmed_late is True


def test_confirm_after_the_deadline_is_late_even_before_the_sweep():
    message = make_message(sent_at=timezone.now() - timedelta(hours=2))
    assert services.confirm(message) is True
    assert message.confirmed_late is True


def test_confirm_in_time_is_not_late():
    message = make_message()
    services.confirm(message)
    assert message.confirmed_late is False


def test_confirmed_is_final():
    message = make_message()
    services.confirm(message)
    assert services.fail(message) is False
    assert services.expire_overdue(now=timezone.now() + timedelta(days=1)) == 0
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED


def test_confirm_fresh_takes_the_callers_row_for_its_read():
    message, other = make_message(), make_message()
    with CaptureQueriesContext(connection) as rereading:
        assert services.confirm(other) is True
    row = Message.objects.get(pk=message.pk)
    with CaptureQueriesContext(connection) as fresh:
        assert services.confirm(row, fresh=True) is True
    assert len(fresh) == len(rereading) - 1
    assert row.feedback == Feedback.CONFIRMED
    assert ProviderCall.objects.filter(message=message).count() == 1


def test_confirm_fresh_with_a_row_gone_stale_reads_again_and_changes_once():
    message = make_message()
    stale = Message.objects.get(pk=message.pk)
    services.fail(message)  # another caller, after this one's read

    assert services.confirm(stale, fresh=True) is True
    assert stale.feedback == Feedback.CONFIRMED
    assert stale.confirmed_late is True  # from failed, as the database said, not pending
    events = MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK)
    assert [(e.from_value, e.to_value) for e in events] == [
        ("pending", "failed"),
        ("failed", "confirmed"),
    ]


def test_confirm_fresh_when_the_row_allows_no_change_the_database_decides():
    message = make_message()
    row = Message.objects.get(pk=message.pk)
    row.feedback = Feedback.CONFIRMED  # what the caller's row says, not what is stored

    assert services.confirm(row, fresh=True) is True
    assert services.confirm(message, fresh=True) is False  # confirmed (stored) is final
    assert MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK).count() == 1


def _model_values(message: Message) -> dict:
    return {field.attname: getattr(message, field.attname) for field in Message._meta.fields}


def test_the_read_of_a_confirmation_gives_what_the_orm_gives():
    message = make_message(metadata={"campaign": "spring", "n": [1, 2]}, purpose="login")
    by_pk = services._read_message({"pk": message.pk})
    by_provider_id = services._read_message(
        {"provider": "locmem", "provider_message_id": message.provider_message_id}
    )
    stored = Message.objects.get(pk=message.pk)
    assert _model_values(by_pk) == _model_values(stored)
    assert _model_values(by_provider_id) == _model_values(stored)
    assert by_pk.metadata == {"campaign": "spring", "n": [1, 2]}  # decoded, not a string
    assert not by_pk._state.adding
    assert by_pk._state.db == "default"
    assert services._read_message({"pk": uuid.uuid4()}) is None


@pytest.mark.postgres
def test_confirm_on_postgresql_is_a_read_and_one_statement_built_once():
    """A confirmation sends the read and one write statement; the statements' SQL is the same
    text each time (built once per shape), only the parameters differ."""
    first, second = make_message(), make_message()
    sent = []

    def spy(execute, sql, params, many, context):
        sent.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(spy), CaptureQueriesContext(connection) as queries:
        assert services.confirm(first.pk) is True
        assert services.confirm(second.pk) is True
    assert len(queries) == 4  # per confirmation: the read, and the one write statement
    (read_1, params_1), (write_1, values_1), (read_2, _), (write_2, values_2) = sent
    assert read_1 == read_2
    assert write_1 == write_2
    assert write_1.startswith("WITH changed AS (UPDATE")
    assert first.pk in values_1 and second.pk in values_2 and first.pk not in values_2
    # States and kinds go to psycopg as plain str, not TextChoices members (cheaper to adapt).
    assert "confirmed" in values_1
    assert not [value for value in values_1 if isinstance(value, str) and type(value) is not str]
    for message in (first, second):
        message.refresh_from_db()
        assert message.feedback == Feedback.CONFIRMED
        assert ProviderCall.objects.filter(message=message).count() == 1
        assert MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK).count() == 1


def test_expire_overdue_moves_only_overdue_pending_messages():
    now = timezone.now()
    overdue = [make_message(sent_at=now - timedelta(hours=1)) for _ in range(3)]
    fresh = make_message(sent_at=now)
    confirmed = make_message(sent_at=now - timedelta(hours=1))
    services.confirm(confirmed)
    assert services.expire_overdue(now=now) == 3
    assert services.expire_overdue(now=now) == 0
    states = dict(Message.objects.values_list("pk", "feedback"))
    assert all(states[m.pk] == Feedback.EXPIRED for m in overdue)
    assert states[fresh.pk] == Feedback.PENDING
    assert states[confirmed.pk] == Feedback.CONFIRMED
    events = MessageEvent.objects.filter(kind=EventKind.FEEDBACK, to_value=Feedback.EXPIRED)
    assert sorted(e.message_id for e in events) == sorted(m.pk for m in overdue)
    assert {e.source for e in events} == {Source.SWEEP}


def test_expire_overdue_works_in_batches(settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "EXPIRE_BATCH": 2}
    now = timezone.now()
    for _ in range(5):
        make_message(sent_at=now - timedelta(hours=1))
    assert services.expire_overdue(now=now) == 5
    assert Message.objects.filter(feedback=Feedback.EXPIRED).count() == 5


def expiry_queries(count: int) -> int:
    """Queries expire_overdue() makes to expire ``count`` overdue messages (one batch)."""
    now = timezone.now()
    for _ in range(count):
        make_message(sent_at=now - timedelta(hours=1))
    with CaptureQueriesContext(connection) as queries:
        assert services.expire_overdue(now=now) == count
    assert Message.objects.filter(feedback=Feedback.EXPIRED).count() == count
    Message.objects.all().delete()
    return len(queries)


def test_expire_overdue_is_set_based_its_queries_do_not_grow_with_the_backlog():
    assert expiry_queries(10) == expiry_queries(100)


@pytest.mark.postgres
def test_expire_overdue_is_set_based_on_postgresql():
    assert connection.vendor == "postgresql"
    few, many = expiry_queries(10), expiry_queries(100)
    assert few == many


def test_expiry_reports_failed_to_providers_that_take_it():
    now = timezone.now()
    reported = make_message(sent_at=now - timedelta(hours=1))
    silent = make_message(provider="silent", sent_at=now - timedelta(hours=1))
    opted_out = make_message(sent_at=now - timedelta(hours=1), feedback_requested=False)
    services.expire_overdue(now=now)
    calls = ProviderCall.objects.all()
    assert [(c.message_id, c.payload) for c in calls] == [(reported.pk, {"outcome": "failed"})]
    assert calls[0].state == CallState.PENDING
    assert silent.pk and opted_out.pk


def test_late_confirmation_after_expiry_is_recorded_as_late():
    now = timezone.now()
    message = make_message(sent_at=now - timedelta(hours=1))
    services.expire_overdue(now=now)
    assert services.confirm(message) is True
    assert message.feedback == Feedback.CONFIRMED
    assert message.confirmed_late is True
    history = list(
        MessageEvent.objects.filter(message=message, kind=EventKind.FEEDBACK).values_list(
            "from_value", "to_value"
        )
    )
    assert history == [("pending", "expired"), ("expired", "confirmed")]


def test_delivery_status_never_moves_backwards():
    message = make_message()
    assert services.record_delivery(message, Delivery.DELIVERED) is True
    assert services.record_delivery(message, Delivery.SENT) is False
    assert services.record_delivery(message, Delivery.QUEUED) is False
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    assert message.delivered_at is not None


def test_a_message_tracked_as_delivered_was_delivered_when_sent():
    sent = timezone.now() - timedelta(minutes=3)
    message = make_message(delivery_status=Delivery.DELIVERED, sent_at=sent)
    message.refresh_from_db()
    assert message.delivered_at == sent
    assert make_message().delivered_at is None


def test_delivery_status_by_provider_id_and_unknown_status():
    message = make_message()
    assert services.record_delivery(
        status=Delivery.SENT, provider="locmem", provider_message_id=message.provider_message_id
    )
    with pytest.raises(ValidationError):
        services.record_delivery(message, "teleported")


def test_validation_errors_keep_a_stable_code_per_field():
    with pytest.raises(ValidationError) as excinfo:
        make_message(to="+1 555")
    assert excinfo.value.error_dict["to"][0].code == "invalid_phone"
    message = make_message()
    with pytest.raises(ValidationError) as excinfo:
        make_message(provider_message_id=message.provider_message_id)
    assert excinfo.value.error_dict["provider_message_id"][0].code == "duplicate"


def test_send_takes_a_chosen_message_id_so_a_token_can_be_put_in_the_body():
    import uuid

    chosen = uuid.uuid4()
    message = services.send(
        provider="locmem", to=NUMBERS["US"], body=f"Code 1, or /c/{chosen}", message_id=chosen
    )
    assert message.pk == chosen
    assert locmem.outbox[-1]["message_id"] == str(chosen)
    with pytest.raises(ValidationError) as excinfo:
        services.send(provider="locmem", to=NUMBERS["US"], body="x", message_id="not-a-uuid")
    assert "message_id" in excinfo.value.message_dict


def test_a_confirmation_before_the_message_was_sent_is_refused():
    message = make_message()
    with pytest.raises(ValidationError) as excinfo:
        services.confirm(message, at=message.sent_at - timedelta(seconds=1))
    assert excinfo.value.error_dict["at"][0].code == "before_sent"
    message.refresh_from_db()
    assert message.feedback == Feedback.PENDING
    assert not MessageEvent.objects.filter(kind=EventKind.FEEDBACK).exists()


def test_a_provider_clock_ahead_of_ours_never_gives_a_negative_time_to_confirm():
    message = make_message(sent_at=timezone.now() + timedelta(seconds=30))
    assert services.confirm(message) is True
    assert message.confirmed_at >= message.sent_at


def test_record_delivery_from_a_stale_message_applies_only_what_the_stored_status_allows():
    message = make_message(provider="locmem", provider_message_id="stale-1")
    stale = Message.objects.get(pk=message.pk)
    assert services.record_delivery(message, Delivery.DELIVERED, provider_status="delivered")

    # The stale copy still says "sent": its UPDATE finds the row moved, and the stored
    # "delivered" wins over a lower status.
    assert stale.delivery_status != Delivery.DELIVERED
    assert not services.record_delivery(stale, Delivery.UNDELIVERED, provider_status="undelivered")
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    transitions = message.events.filter(kind=EventKind.DELIVERY).exclude(from_value="")
    assert list(transitions.values_list("to_value", flat=True)) == [Delivery.DELIVERED]


def test_record_delivery_of_a_just_read_message_reads_it_no_second_time():
    message = make_message(provider="locmem", provider_message_id="fresh-1")
    fresh = Message.objects.get(pk=message.pk)
    table = Message._meta.db_table
    with CaptureQueriesContext(connection) as queries:
        assert services.record_delivery(fresh, Delivery.DELIVERED, provider_status="delivered")
        assert not services.record_delivery(fresh, Delivery.SENT, provider_status="sent")
    selects = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and table in q["sql"]]
    assert selects == []


def test_record_delivery_of_a_refinement_reads_the_stored_provider_status():
    message = make_message(provider="locmem", provider_message_id="refine-1")
    stale = Message.objects.get(pk=message.pk)
    services.record_delivery(message, Delivery.DELIVERED, provider_status="TEXT_SUCCESSFUL")
    stale.delivery_status, stale.provider_status = Delivery.DELIVERED, "something else"

    assert not services.record_delivery(
        stale,
        Delivery.DELIVERED,
        provider_status="TEXT_DELIVERED",
        supersedes={"TEXT_SUCCESSFUL"},
    )
    message.refresh_from_db()
    assert message.provider_status == "TEXT_DELIVERED"
    assert message.events.filter(kind=EventKind.PROVIDER).count() == 1
