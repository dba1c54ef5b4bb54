"""No message body, code or clear recipient is stored in the database or written to a log.

Bodies carry one-time codes; recipients are stored as a keyed hash, a masked form and a country.
After a message goes through its whole life (send, delivery, confirm or fail or expiry, the
outbox delivering the reports, django-q2 running the tasks), every column of every row of the
app's and django-q2's tables, and every log record at DEBUG, is searched for them.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import logging
import uuid
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.utils import timezone

from feedback_app import services
from feedback_app.models import Message
from feedback_app.providers import PermanentError, locmem
from feedback_app.providers import aws as aws_module
from feedback_app.states import Channel, Delivery, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.aws_sms_fake import AwsSmsFake
from feedback_app.testing.chime_fake import ChimeFake

from .factories import NUMBERS

pytestmark = pytest.mark.django_db

CODE = "123456"
BODY = f"Your code is {CODE}"

#: recipient as given, and every clear form of it that must not be stored.
CASES = {
    "sms": {
        "channel": Channel.SMS,
        "to": NUMBERS["US"],
        "secrets": [NUMBERS["US"], NUMBERS["US"][1:], "2015550123", "201-555-0123"],
    },
    "whatsapp": {
        "channel": Channel.WHATSAPP,
        "to": f"whatsapp:{NUMBERS['GB']}",
        "secrets": [
            f"whatsapp:{NUMBERS['GB']}",
            NUMBERS["GB"],
            NUMBERS["GB"][1:],
            "7400123456",
            "07400 123456",
        ],
    },
}


def _text(value: object) -> str | None:
    """The searchable text of a stored value; None for types that cannot hold text."""
    if value is None or isinstance(
        value, bool | int | float | decimal.Decimal | dt.datetime | dt.date | uuid.UUID
    ):
        return None
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    if isinstance(value, bytes | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


def stored_texts() -> list[tuple[str, str, str]]:
    """(table, column, text) for every text-holding cell of feedback_app's and the task queues'
    (django-q2's, django-tasks-db's) installed."""
    cells = []
    queues = ("feedback_app", "django_q", "django_tasks_db")
    models = [m for c in apps.get_app_configs() if c.name in queues for m in c.get_models()]
    for model in models:
        if model._meta.proxy:
            continue
        table = model._meta.db_table
        # Raw rows: what is really in the columns (pickled fields stay encoded here).
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            names = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                for name, value in zip(names, row, strict=True):
                    text = _text(value)
                    if text:
                        cells.append((table, name, text))
        # Decoded by the ORM: what a pickled or JSON field holds.
        for row in model._base_manager.values():
            for name, value in row.items():
                text = _text(value)
                if text:
                    cells.append((table, name, text))
    return cells


@pytest.fixture
def all_logs(caplog):
    """caplog at DEBUG for every logger, SQL included, including loggers that do not propagate."""
    caplog.set_level(logging.DEBUG)
    attached = []
    for name in list(logging.root.manager.loggerDict):
        logger = logging.getLogger(name)
        caplog.set_level(logging.DEBUG, logger=name)
        if not logger.propagate:
            logger.addHandler(caplog.handler)
            attached.append(logger)
    old_debug_cursor = connection.force_debug_cursor
    connection.force_debug_cursor = True  # django.db.backends logs every query and its params
    yield caplog
    connection.force_debug_cursor = old_debug_cursor
    for logger in attached:
        logger.removeHandler(caplog.handler)


def logged_texts(caplog) -> list[str]:
    texts = []
    for record in caplog.records:
        texts.append(record.getMessage())
        texts.append(repr(record.args))
        texts.append(repr(getattr(record, "params", "")))
        texts.append(repr(getattr(record, "sql", "")))
        if record.exc_info:
            texts.append(logging.Formatter().formatException(record.exc_info))
    return texts


def live_a_whole_life(case: dict, django_capture_on_commit_callbacks) -> list[Message]:
    """Three messages to one recipient: confirmed, failed (report refused once), expired."""
    sent = []
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            sent.append(
                services.send(provider="locmem", to=case["to"], body=BODY, channel=case["channel"])
            )
    assert [entry["body"] for entry in locmem.outbox] == [BODY] * 3
    confirmed, failed, expired = sent
    with django_capture_on_commit_callbacks(execute=True):
        services.record_delivery(confirmed, Delivery.DELIVERED, provider_status="delivered")
        services.record_delivery(failed, Delivery.UNDELIVERED, provider_status="30003")
        assert services.confirm(confirmed) is True
        # The provider refuses one report: its error text is stored on the call.
        locmem.fail_next(1, PermanentError("number is unreachable", code="21610"))
        assert services.fail(failed) is True
    with django_capture_on_commit_callbacks(execute=True):
        assert services.expire_overdue(now=timezone.now() + timedelta(days=1)) == 1
        assert services.confirm(expired) is True
    states = dict(Message.objects.values_list("pk", "feedback"))
    assert states == {
        confirmed.pk: Feedback.CONFIRMED,
        failed.pk: Feedback.FAILED,
        expired.pk: Feedback.CONFIRMED,
    }
    # The reports really went out, so the outbox and the queue had their chance to leak.
    assert {r["outcome"] for r in locmem.reports} == {"confirmed", "failed"}
    return sent


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_body_code_or_clear_number_is_stored_anywhere(case, django_capture_on_commit_callbacks):
    live_a_whole_life(CASES[case], django_capture_on_commit_callbacks)
    cells = stored_texts()
    assert cells, "nothing was stored at all"
    for secret in [BODY, CODE, *CASES[case]["secrets"]]:
        leaks = [(table, column) for table, column, text in cells if secret in text]
        assert not leaks, f"{secret!r} stored in {leaks}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_body_code_or_clear_number_is_logged(case, all_logs, django_capture_on_commit_callbacks):
    live_a_whole_life(CASES[case], django_capture_on_commit_callbacks)
    texts = logged_texts(all_logs)
    # The queries were logged, so a leak through SQL parameters would show.
    assert any("feedback_app_message" in text for text in texts)
    for secret in [BODY, CODE, *CASES[case]["secrets"]]:
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"{secret!r} logged: {leaks[:3]}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_what_is_stored_of_the_recipient_is_the_hash_mask_and_country(case):
    message = services.send(
        provider="locmem", to=CASES[case]["to"], body=BODY, channel=CASES[case]["channel"]
    )
    same = services.send(
        provider="locmem", to=CASES[case]["to"], body=BODY, channel=CASES[case]["channel"]
    )
    assert len(message.recipient_hash) == 64
    # The keyed hash finds every message to one recipient.
    assert message.recipient_hash == same.recipient_hash
    assert message.recipient_masked.count("*") >= 6
    assert message.country in {"US", "GB"}
    # The provider, and only the provider, got the clear number in E.164.
    assert locmem.outbox[-1]["to"] == CASES[case]["secrets"][0].removeprefix("whatsapp:")


# The boto3 backends ----------------------------------------------------------------------------

CHIME_APP = "arn:aws:chime:us-east-1:111122223333:app-instance/5e1f7c2a-9d3b-4a8e-b6c1-0f2d4e6a8b9c"
CHIME_CHANNEL = f"{CHIME_APP}/channel/7d4e2b1c-3a5f-4e6d-8c9b-a1b2c3d4e5f6"


@pytest.fixture
def aws(settings, monkeypatch):
    """``aws(key, server, **options)``: the boto3 backend ``key`` pointed at a local fake."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")

    def configure(key: str, server: FakeServer, **options: object) -> None:
        config = {
            "ENDPOINT_URL": server.url,
            "REGION": "us-east-1",
            "ACCESS_KEY_ID": "AKIDPRIVACYTEST",
            "SECRET_ACCESS_KEY": "privacy-test-secret",
            "MAX_ATTEMPTS": 1,
            **options,
        }
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: config},
        }

    return configure


def assert_request_logged_without(texts: list[str], secrets: list[str]) -> None:
    # botocore's request log is on, and was redacted rather than dropped.
    requests = [text for text in texts if "Making request for" in text]
    assert requests, "botocore logged no request"
    for secret in secrets:
        leaks = [text for text in texts if secret in text]
        assert not leaks, f"{secret!r} logged: {leaks[:3]}"
    assert any(aws_module.REDACTED in text for text in requests)


def test_aws_sms_logs_neither_the_body_nor_the_number(
    aws, all_logs, django_capture_on_commit_callbacks
):
    fake = AwsSmsFake()
    with FakeServer(fake) as server:
        aws("aws_sms", server, CONFIGURATION_SET="otp-events")
        with django_capture_on_commit_callbacks(execute=True):
            message = services.send(provider="aws_sms", to=NUMBERS["US"], body=BODY)
            assert services.confirm(message) is True
    # The request itself was not redacted: the provider got the body and the number.
    sent = fake.messages[message.provider_message_id]
    assert (sent.body, sent.destination) == (BODY, NUMBERS["US"])
    assert fake.feedback[message.provider_message_id] == ["RECEIVED"]
    assert_request_logged_without(logged_texts(all_logs), [BODY, CODE, *CASES["sms"]["secrets"]])


def test_chime_logs_no_message_content(aws, all_logs):
    fake = ChimeFake()
    with FakeServer(fake) as server:
        aws("chime", server, CHIME_BEARER=f"{CHIME_APP}/bot/otp-bot")
        message = services.send(provider="chime", channel=Channel.CHAT, to=CHIME_CHANNEL, body=BODY)
    assert fake.messages[message.provider_message_id].content == BODY
    assert_request_logged_without(logged_texts(all_logs), [BODY, CODE])


def test_the_redaction_filter_leaves_the_request_itself_untouched():
    request = {
        "url_path": "/",
        "body": json.dumps({"MessageBody": BODY, "DestinationPhoneNumber": NUMBERS["US"]}).encode(),
        "headers": {"X-Amz-Target": "PinpointSMSVoiceV2.SendTextMessage"},
    }
    params = {"Content": BODY, "nested": [{"DestinationPhoneNumber": NUMBERS["US"]}]}
    original = json.dumps([request["body"].decode(), params])
    record = logging.LogRecord(
        "botocore.endpoint", logging.DEBUG, __file__, 1, "request %s %s", (request, params), None
    )
    assert aws_module.RedactParametersFilter().filter(record) is True
    text = record.getMessage()
    assert BODY not in text and NUMBERS["US"] not in text
    assert "PinpointSMSVoiceV2.SendTextMessage" in text
    assert json.dumps([request["body"].decode(), params]) == original
    # A body that is not JSON cannot be searched: it is dropped whole.
    record = logging.LogRecord(
        "botocore.endpoint", logging.DEBUG, __file__, 1, "%s", ({"body": f"x={BODY}"},), None
    )
    aws_module.RedactParametersFilter().filter(record)
    assert BODY not in record.getMessage()


def test_provider_errors_mask_the_numbers_their_message_quotes():
    error = PermanentError(f"'To' number {NUMBERS['GB']} is not allowed (21408)", code=21408)
    assert NUMBERS["GB"] not in str(error) and NUMBERS["GB"] not in error.message
    assert "+44******3456" in error.message and "21408" in str(error)


def test_aws_logs_no_session_token(aws, all_logs):
    """Temporary credentials (an instance or task role) carry a session token, which botocore
    prints with the request's headers and its canonical request at DEBUG."""
    token = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKENsecret"
    fake = AwsSmsFake()
    with FakeServer(fake) as server:
        aws("aws_sms", server, CONFIGURATION_SET="otp-events", SESSION_TOKEN=token)
        services.send(provider="aws_sms", to=NUMBERS["US"], body=BODY)
    assert fake.requests[0].headers["x-amz-security-token"] == token  # it was sent
    texts = logged_texts(all_logs)
    assert any("x-amz-security-token" in text.lower() for text in texts)  # and logged, redacted
    assert not [text for text in texts if token in text]


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_guard_stores_nothing_of_the_number_or_body(case, all_logs, settings, window_start):
    """Refused sends (a rate limit, a block, an automatic block) leave BlockedSend and GuardBlock
    rows and cache counters: none holds the number, its hash, its masked form or the body."""
    from django.core.cache import caches

    from feedback_app import blocks
    from feedback_app.errors import SendBlocked

    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "GUARD": {"RECIPIENT_LIMIT": [1, 600], "MIN_ATTEMPTS": 1, "SETTLE": 0},
    }
    to, channel = CASES[case]["to"], CASES[case]["channel"]
    message = services.send(provider="locmem", to=to, body=BODY, channel=channel)
    with pytest.raises(SendBlocked):
        services.send(provider="locmem", to=to, body=BODY, channel=channel, client="ip:10.0.0.1")
    window_start.advance(seconds=1)  # the automatic block reads sends before now
    made = blocks.block_pumped_prefixes()
    assert [block.value for block in made] == [message.recipient_prefix]
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "GUARD": {"RECIPIENT_LIMIT": None}}
    with pytest.raises(SendBlocked):
        services.send(provider="locmem", to=to, body=BODY, channel=channel)

    cells = [
        (table, column, text)
        for table, column, text in stored_texts()
        if table in ("feedback_app_guardblock", "feedback_app_blockedsend")
    ]
    assert {table for table, _, _ in cells} == {
        "feedback_app_guardblock",
        "feedback_app_blockedsend",
    }
    secrets = [BODY, CODE, message.recipient_hash, message.recipient_masked, "10.0.0.1"]
    for secret in [*secrets, *CASES[case]["secrets"]]:
        leaks = [(table, column) for table, column, text in cells if secret in text]
        assert not leaks, f"{secret!r} stored in {leaks}"
        # The counters are keyed by the keyed hash (as Message.recipient_hash), never the number.
        if secret != message.recipient_hash:
            keys = [key for key in caches["default"]._cache if secret in key]
            assert not keys, f"{secret!r} in a cache key"
        assert not [text for text in logged_texts(all_logs) if secret in text and "guard" in text]
