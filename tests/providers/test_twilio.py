"""The twilio backend through the real twilio client, against TwilioFake over HTTP."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from twilio.rest.api.v2010.account.message import MessageInstance

from feedback_app import polling, services, tasks
from feedback_app.conf import app_settings
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.providers import PermanentError, RetryableError, get_provider
from feedback_app.providers.twilio import DEFAULT_TIMEOUT, STATUSES, delivery_status
from feedback_app.states import CallState, Channel, Delivery, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.twilio_fake import ACCOUNT_SID, AUTH_TOKEN, TwilioFake

pytestmark = pytest.mark.django_db

FROM = "+15005550006"
TO = "+12015550123"
BODY = "Your verification code is 482913"
SERVICE = "MG" + "1" * 32
API_KEY, API_SECRET = "SK" + "2" * 32, "api-key-secret"
UNKNOWN_SID = "SM" + "f" * 32


@pytest.fixture(autouse=True)
def twilio_environment(monkeypatch):
    """No credentials, edge or region from the machine running the tests."""
    for name in (
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_API_KEY",
        "TWILIO_API_SECRET",
        "TWILIO_EDGE",
        "TWILIO_REGION",
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def shared_fake() -> TwilioFake:
    return TwilioFake(api_keys={API_KEY: API_SECRET})


@pytest.fixture(scope="module")
def server(shared_fake):
    with FakeServer(shared_fake) as server:
        yield server


@pytest.fixture
def fake(shared_fake, server) -> TwilioFake:
    shared_fake.reset()
    return shared_fake


def configure(settings, key: str = "twilio", **twilio: Any) -> None:
    settings.FEEDBACK_APP = {
        **settings.FEEDBACK_APP,
        "PROVIDERS": {**settings.FEEDBACK_APP["PROVIDERS"], key: twilio},
    }


@pytest.fixture
def twilio(settings, server):
    configure(
        settings, ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN=AUTH_TOKEN, BASE_URL=server.url, FROM=FROM
    )
    return get_provider("twilio")


def send(**kwargs: Any) -> Message:
    return services.send(**{"provider": "twilio", "to": TO, "body": BODY, **kwargs})


def creates(fake: TwilioFake) -> list:
    return fake.requests_to("POST", "/Messages.json")


def feedback_posts(fake: TwilioFake) -> list:
    return fake.requests_to("POST", "/Feedback.json")


def form(request) -> dict[str, str]:
    return {name: values[-1] for name, values in request.form.items()}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- sending ---------------------------------------------------------------------------------------


def test_send_creates_the_message_with_feedback_enabled_and_our_status_callback(
    settings, twilio, fake
):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com/"}

    message = send()

    [request] = creates(fake)
    assert form(request) == {
        "To": TO,
        "From": FROM,
        "Body": BODY,
        "ProvideFeedback": "true",
        "StatusCallback": "https://otp.example.com/feedback/webhooks/twilio/",
    }
    assert request.username == ACCOUNT_SID
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert fake.messages[message.provider_message_id].provide_feedback is True
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "queued")
    assert (message.sender, message.feedback) == (FROM, Feedback.PENDING)


def test_the_status_callback_setting_wins_over_public_url(settings, server, fake):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    callback = "https://hooks.example.net/twilio/status?tenant=7"
    configure(
        settings,
        ACCOUNT_SID=ACCOUNT_SID,
        AUTH_TOKEN=AUTH_TOKEN,
        BASE_URL=server.url,
        FROM=FROM,
        STATUS_CALLBACK=callback,
    )

    send()

    assert form(creates(fake)[0])["StatusCallback"] == callback


def test_without_public_url_or_setting_no_status_callback_is_sent(twilio, fake):
    send()

    assert "StatusCallback" not in creates(fake)[0].form


def test_another_key_with_the_twilio_backend_gets_its_own_webhook_url(settings, server, fake):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "PUBLIC_URL": "https://otp.example.com"}
    configure(
        settings,
        "twilio_eu",
        BACKEND="feedback_app.providers.twilio.TwilioProvider",
        ACCOUNT_SID=ACCOUNT_SID,
        AUTH_TOKEN=AUTH_TOKEN,
        BASE_URL=server.url,
        FROM=FROM,
    )

    message = send(provider="twilio_eu")

    callback = form(creates(fake)[0])["StatusCallback"]
    assert callback == "https://otp.example.com/feedback/webhooks/twilio/twilio_eu/"
    assert message.provider == "twilio_eu"


def test_a_messaging_service_from_the_settings_picks_the_sender(settings, server, fake):
    configure(
        settings,
        ACCOUNT_SID=ACCOUNT_SID,
        AUTH_TOKEN=AUTH_TOKEN,
        BASE_URL=server.url,
        MESSAGING_SERVICE_SID=SERVICE,
    )

    message = send()

    sent = form(creates(fake)[0])
    assert sent["MessagingServiceSid"] == SERVICE
    assert "From" not in sent
    # A Messaging Service answers "accepted": still queued for us.
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "accepted")
    assert message.sender == SERVICE


def test_the_sender_argument_wins_over_the_settings(twilio, fake):
    by_number = send(sender="+15005550001")
    by_service = send(sender=SERVICE)

    first, second = (form(request) for request in creates(fake))
    assert first["From"] == "+15005550001" and "MessagingServiceSid" not in first
    assert second["MessagingServiceSid"] == SERVICE and "From" not in second
    assert (by_number.sender, by_service.sender) == ("+15005550001", SERVICE)


def test_without_any_sender_nothing_is_sent(settings, server, fake):
    configure(settings, ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN=AUTH_TOKEN, BASE_URL=server.url)

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "missing_sender"
    assert fake.requests == []
    assert not Message.objects.exists()


def test_whatsapp_addresses_get_the_channel_prefix(twilio, fake):
    message = send(channel=Channel.WHATSAPP)

    sent = form(creates(fake)[0])
    assert (sent["To"], sent["From"]) == (f"whatsapp:{TO}", f"whatsapp:{FROM}")
    assert message.channel == Channel.WHATSAPP
    assert message.sender == f"whatsapp:{FROM}"


def test_options_pass_through_to_the_message(twilio, fake):
    send(validity_period=300, message_intent="otp", smart_encoded=True)

    sent = form(creates(fake)[0])
    assert (sent["ValidityPeriod"], sent["MessageIntent"], sent["SmartEncoded"]) == (
        "300",
        "otp",
        "true",
    )


def test_an_unknown_option_is_a_programming_error(twilio, fake):
    with pytest.raises(TypeError, match="provide_feedback"):
        send(provide_feedback=False)

    assert fake.requests == []


def test_a_channel_twilio_messaging_does_not_serve_is_refused_before_any_request(twilio, fake):
    with pytest.raises(PermanentError) as raised:
        send(channel=Channel.VOICE)

    assert raised.value.code == "unsupported_channel"
    assert fake.requests == []


def test_a_validity_period_twilio_refuses_is_a_permanent_error_with_its_code(twilio, fake):
    with pytest.raises(PermanentError) as raised:
        send(validity_period=36001)

    assert raised.value.code == "21624"
    assert "Validity period" in raised.value.message
    assert not Message.objects.exists()


def test_the_body_is_stored_nowhere(twilio, fake):
    message = send()

    rows = [
        *Message.objects.filter(pk=message.pk).values_list(),
        *MessageEvent.objects.filter(message=message).values_list(),
    ]
    assert BODY not in repr(rows)
    assert TO not in repr(rows)
    assert fake.messages[message.provider_message_id].body == BODY


# -- the status vocabulary -------------------------------------------------------------------------


def test_every_outbound_twilio_status_is_mapped_and_inbound_ones_are_not():
    statuses = {
        value for name, value in vars(MessageInstance.Status).items() if not name.startswith("_")
    }
    assert set(STATUSES) <= statuses
    assert statuses - set(STATUSES) == {"receiving", "received", "partially_delivered"}
    assert set(STATUSES.values()) <= set(Delivery.values)


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        ("queued", Delivery.QUEUED),
        ("accepted", Delivery.QUEUED),
        ("scheduled", Delivery.QUEUED),
        ("sending", Delivery.QUEUED),
        ("sent", Delivery.SENT),
        ("delivered", Delivery.DELIVERED),
        ("read", Delivery.DELIVERED),
        ("undelivered", Delivery.UNDELIVERED),
        ("failed", Delivery.FAILED),
        ("canceled", Delivery.REJECTED),
        ("received", None),
        ("something-new", None),
    ],
)
def test_twilio_statuses_map_to_the_delivery_vocabulary(raw, status):
    assert delivery_status(raw) == status


# -- reporting feedback ----------------------------------------------------------------------------


def test_a_confirmation_posts_outcome_confirmed_exactly_once(
    twilio, fake, django_capture_on_commit_callbacks
):
    message = send()

    with django_capture_on_commit_callbacks(execute=True):
        assert services.confirm(message) is True
    with django_capture_on_commit_callbacks(execute=True):
        assert services.confirm(message) is False

    [request] = feedback_posts(fake)
    assert request.path == (
        f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages/{message.provider_message_id}/Feedback.json"
    )
    assert request.form == {"Outcome": ["confirmed"]}
    assert fake.feedback == {message.provider_message_id: ["confirmed"]}
    assert ProviderCall.objects.get(message=message).state == CallState.SUCCEEDED


def test_failure_and_expiry_send_twilio_nothing(twilio, fake, django_capture_on_commit_callbacks):
    failed, expired = send(), send()

    with django_capture_on_commit_callbacks(execute=True):
        services.fail(failed)
        services.expire_overdue(timezone.now() + timedelta(days=1))

    assert Message.objects.get(pk=expired.pk).feedback == Feedback.EXPIRED
    assert not ProviderCall.objects.exists()
    assert feedback_posts(fake) == []


@pytest.mark.parametrize("outcome", ["failed", "unconfirmed", "expired"])
def test_only_confirmed_is_ever_posted(twilio, fake, outcome):
    message = send()

    with pytest.raises(PermanentError) as raised:
        twilio.report_feedback(
            provider_message_id=message.provider_message_id, outcome=outcome, idempotency_key="k"
        )

    assert raised.value.code == "unsupported_outcome"
    assert feedback_posts(fake) == []


@pytest.mark.parametrize(
    "sid",
    [
        "SM123",
        "sm" + "a" * 32,
        "XX" + "a" * 32,
        "SM" + "g" * 32,
        "SM" + "a" * 33,
        "SM" + "a" * 31 + "\n",
        "",
    ],
)
def test_a_malformed_sid_is_permanent_before_any_request(twilio, fake, sid):
    with pytest.raises(PermanentError) as raised:
        twilio.report_feedback(provider_message_id=sid, outcome="confirmed", idempotency_key="k")

    assert raised.value.code == "invalid_sid"
    assert fake.requests == []


def test_an_mms_sid_is_a_message_sid(twilio, fake):
    message = send(media_url=["https://cdn.example.com/code.png"])

    assert message.provider_message_id.startswith("MM")
    twilio.report_feedback(
        provider_message_id=message.provider_message_id, outcome="confirmed", idempotency_key="k"
    )
    assert fake.feedback == {message.provider_message_id: ["confirmed"]}


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (429, 20429, RetryableError),
        (400, 20429, RetryableError),
        (500, 20500, RetryableError),
        (502, 20502, RetryableError),
        (503, 20503, RetryableError),
        (400, 21211, PermanentError),
        (401, 20003, PermanentError),
        (403, 20403, PermanentError),
        (404, 20404, PermanentError),
    ],
)
@pytest.mark.parametrize("problem", [False, True], ids=["classic", "rfc9457"])
def test_each_twilio_error_lands_on_its_side_with_twilios_code_and_message(
    twilio, fake, status, code, kind, problem
):
    message = send()
    fake.fail_next(1, status=status, code=code, message="Twilio said no", problem=problem)

    with pytest.raises(kind) as raised:
        twilio.report_feedback(
            provider_message_id=message.provider_message_id,
            outcome="confirmed",
            idempotency_key="k",
        )

    assert raised.value.code == str(code)
    assert "Twilio said no" in raised.value.message
    assert fake.feedback == {}


@pytest.mark.parametrize("body_status", [None, "400", "", 503.0, True])
def test_a_problem_body_without_an_integer_status_is_retryable(twilio, fake, body_status):
    message = send()
    fake.fail_next(1, status=400, code=21211, problem=True, problem_status=body_status)

    with pytest.raises(RetryableError) as raised:
        twilio.report_feedback(
            provider_message_id=message.provider_message_id,
            outcome="confirmed",
            idempotency_key="k",
        )

    assert raised.value.code == "21211"
    assert fake.feedback == {}


def test_a_message_twilio_does_not_know_is_permanent_not_found(twilio, fake):
    with pytest.raises(PermanentError) as raised:
        twilio.report_feedback(
            provider_message_id=UNKNOWN_SID, outcome="confirmed", idempotency_key="k"
        )

    assert raised.value.code == "20404"
    assert len(feedback_posts(fake)) == 1


def test_a_wrong_auth_token_is_permanent_with_twilios_authenticate_code(settings, server, fake):
    configure(settings, ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN="wrong", BASE_URL=server.url, FROM=FROM)

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "20003"
    assert "Authenticate" in raised.value.message


def test_a_timeout_is_retryable(settings, server, fake):
    configure(
        settings,
        ACCOUNT_SID=ACCOUNT_SID,
        AUTH_TOKEN=AUTH_TOKEN,
        BASE_URL=server.url,
        FROM=FROM,
        TIMEOUT=0.2,
    )
    fake.latency = 1.0

    with pytest.raises(RetryableError) as raised:
        send()

    assert raised.value.code == "ReadTimeout"
    # Twilio may well have taken a request whose answer timed out: nothing is tracked for it.
    assert len(fake.messages) == 1
    assert not Message.objects.exists()


def test_a_refused_connection_is_retryable(settings):
    configure(
        settings,
        ACCOUNT_SID=ACCOUNT_SID,
        AUTH_TOKEN=AUTH_TOKEN,
        BASE_URL=f"http://127.0.0.1:{closed_port()}",
        FROM=FROM,
    )

    with pytest.raises(RetryableError) as raised:
        send()

    assert raised.value.code == "ConnectionError"


def test_a_report_that_fails_five_times_reaches_twilio_exactly_once_through_the_outbox(
    twilio, fake, clock, django_capture_on_commit_callbacks
):
    message = send()
    fake.fail_next(5, status=503)

    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)
    call = ProviderCall.objects.get(message=message)
    sweeps = 0
    while call.state == CallState.PENDING:
        # Past the backoff and the sweep's grace: the sweep hands the call to the (inline) queue.
        clock.now = call.next_attempt_at + timedelta(seconds=31)
        tasks.sweep_outbox()
        call.refresh_from_db()
        sweeps += 1
        assert sweeps <= 10

    assert (call.state, call.attempts) == (CallState.SUCCEEDED, 6)
    assert fake.feedback == {message.provider_message_id: ["confirmed"]}
    assert len(feedback_posts(fake)) == 6
    clock.now += timedelta(hours=1)
    assert tasks.sweep_outbox() == 0
    assert len(feedback_posts(fake)) == 6


# -- fetching the status ---------------------------------------------------------------------------


def test_fetch_status_reads_the_message_and_maps_its_status(twilio, fake):
    message = send()
    fake.set_status(message.provider_message_id, "undelivered", error_code=30003)

    update = twilio.fetch_status(message)

    assert update.provider_message_id == message.provider_message_id
    assert (update.delivery_status, update.provider_status) == (Delivery.UNDELIVERED, "undelivered")
    assert update.detail == {"error_code": "30003"}
    assert update.at == fake.messages[message.provider_message_id].date_updated
    assert fake.requests[-1].method == "GET"


def test_fetch_status_of_a_status_not_applied_is_none(twilio, fake):
    message = send()
    fake.set_status(message.provider_message_id, "receiving")

    assert twilio.fetch_status(message) is None


def test_a_message_whose_callbacks_were_lost_is_synced_from_queued_too(twilio, fake, clock):
    """Its callbacks came before send() committed (docs/webhooks.md): it stayed queued."""
    message = send()
    assert message.delivery_status == Delivery.QUEUED
    fake.set_status(message.provider_message_id, "delivered")
    clock.advance(seconds=app_settings.SYNC_STALE_AFTER + 1)
    polling.sync_statuses()
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED


def test_fetch_status_checks_the_sid_before_any_request(twilio, fake):
    message = Message(provider="twilio", provider_message_id="not-a-sid")

    with pytest.raises(PermanentError):
        twilio.fetch_status(message)

    assert fake.requests == []


# -- the client ------------------------------------------------------------------------------------


def test_the_client_is_built_once_per_process_with_an_explicit_timeout(settings, twilio, fake):
    client = twilio.client

    send()
    send()

    assert get_provider("twilio").client is client
    assert client.http_client.timeout == DEFAULT_TIMEOUT
    configure(settings, ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN=AUTH_TOKEN, TIMEOUT=3)
    assert get_provider("twilio").client.http_client.timeout == 3


def test_credentials_come_from_the_sdks_environment_variables(settings, server, fake, monkeypatch):
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    configure(settings, BASE_URL=server.url, FROM=FROM)

    send()

    assert creates(fake)[0].username == ACCOUNT_SID


def test_an_api_key_authenticates_for_the_account(settings, server, fake):
    configure(
        settings,
        ACCOUNT_SID=ACCOUNT_SID,
        API_KEY=API_KEY,
        API_SECRET=API_SECRET,
        BASE_URL=server.url,
        FROM=FROM,
    )

    send()

    request = creates(fake)[0]
    assert request.username == API_KEY
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"


def test_without_credentials_nothing_is_sent(settings, server, fake):
    configure(settings, BASE_URL=server.url, FROM=FROM)

    with pytest.raises(PermanentError) as raised:
        send()

    assert raised.value.code == "missing_credentials"
    assert fake.requests == []


def test_an_edge_from_the_environment_does_not_divert_requests_from_base_url(
    settings, server, fake, monkeypatch
):
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")
    configure(
        settings, ACCOUNT_SID=ACCOUNT_SID, AUTH_TOKEN=AUTH_TOKEN, BASE_URL=server.url, FROM=FROM
    )

    send()

    assert len(creates(fake)) == 1


def test_neither_credentials_nor_the_body_are_logged(
    twilio, fake, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)

    message = send()
    with django_capture_on_commit_callbacks(execute=True):
        services.confirm(message)

    assert "Twilio API Request" in caplog.text  # the SDK's request log is on
    for secret in (AUTH_TOKEN, BODY, TO):
        assert secret not in caplog.text
