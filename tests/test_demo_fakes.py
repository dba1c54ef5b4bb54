"""The whole path through the real SDKs against ``feedback_fakes``: send, status callback (Twilio)
or SNS notification (AWS) or poll (Chime), confirm, report; what ``make demo`` runs."""

import time

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from feedback_app import polling, services
from feedback_app.models import Message, MessageEvent, ProviderCall
from feedback_app.states import CallState, Delivery, EventKind, Feedback, Source
from feedback_app.testing import FakeServer
from feedback_app.testing.carrier import unreachable
from feedback_app.testing.demo_fakes import ProviderFakes, mounted_provider_settings

from .factories import NUMBERS

pytestmark = pytest.mark.django_db(transaction=True)

CHANNEL = "arn:aws:chime:us-east-1:111122223333:app-instance/demo/channel/otp"
BOT = "arn:aws:chime:us-east-1:111122223333:app-instance/demo/user/bot"
TOPIC = "arn:aws:sns:us-east-1:111122223333:demo-sms-events"


@pytest.fixture
def fakes(settings, live_server):
    app = ProviderFakes()
    app.twilio.delays = (0.05, 0.1)
    app.twilio.undelivered_rate = 0.0
    app.aws_sms.delays = (0.05, 0.15)
    app.aws_sms.failure_rate = 0.0
    app.sns.retry_delays = (0.3, 0.6, 1.2, 2.4)
    app.chime.pending_rate = 0.0
    app.chime.settle_after = (0.05, 0.05)
    # The webhook trusts the fakes' SNS certificate through SNS_DEV_CERTIFICATE_URLS, which
    # works with DEBUG on only, as in the example project's `make demo`.
    settings.DEBUG = True
    aws = {
        "REGION": "us-east-1",
        "ACCESS_KEY_ID": "fake",
        "SECRET_ACCESS_KEY": "fake",
        "MAX_ATTEMPTS": 1,
    }
    with FakeServer(app) as server:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PUBLIC_URL": live_server.url,
            "PROVIDERS": {
                "twilio": {
                    "ACCOUNT_SID": app.twilio.account_sid,
                    "AUTH_TOKEN": app.twilio.auth_token,
                    "FROM": "+15005550006",
                    "BASE_URL": server.url,
                },
                "aws_sms": {
                    **aws,
                    "ENDPOINT_URL": server.url,
                    "CONFIGURATION_SET": "demo",
                    "WEBHOOK_BASIC_AUTH": "sns:demo-webhook-password",
                    "SNS_TOPIC_ARNS": [TOPIC],
                    "SNS_DEV_CERTIFICATE_URLS": [server.url + "/sns/"],
                },
                "chime": {
                    **aws,
                    "ENDPOINT_URL": server.url,
                    "CHIME_BEARER": BOT,
                },
            },
        }
        yield app


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_twilio_send_callback_confirm_and_report_through_the_sdk(fakes):
    message = services.send(provider="twilio", to=NUMBERS["US"], body="Your code is 482913")
    sid = message.provider_message_id
    assert fakes.twilio.messages[sid].provide_feedback is True
    # The fake plays the carrier: signed callbacks reach the webhook of the live server.
    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    assert services.confirm(message) is True
    assert fakes.twilio.feedback[sid] == ["confirmed"]


def test_whether_twilio_delivers_depends_on_the_number_alone(fakes):
    """The same number always ends the same way (the README's is delivered), so neither the demo
    nor a test that sends to a reachable number sees a random undelivered message."""
    fakes.twilio.undelivered_rate = 0.1
    rate = fakes.twilio.undelivered_rate
    assert unreachable("+14155550125", rate) and not unreachable("+14155550123", rate)
    assert 50 < sum(unreachable(f"+1415555{n:04}", rate) for n in range(1000)) < 150
    off = services.send(provider="twilio", to="+14155550125", body="Your code is 482913")
    on = services.send(provider="twilio", to="+14155550123", body="Your code is 482913")
    wait_for(lambda: Message.objects.get(pk=off.pk).delivery_status == Delivery.UNDELIVERED)
    wait_for(lambda: Message.objects.get(pk=on.pk).delivery_status == Delivery.DELIVERED)
    assert fakes.twilio.messages[off.provider_message_id].error_code == 30003


def test_aws_sms_send_is_delivered_through_signed_sns_notifications_and_reports_received(fakes):
    message = services.send(provider="aws_sms", to=NUMBERS["GB"], body="Your code is 1234")

    # TEXT_SUCCESSFUL, then TEXT_DELIVERED, signed and posted to the webhook with basic auth.
    wait_for(
        lambda: Message.objects.get(pk=message.pk).provider_status == "TEXT_DELIVERED",
    )
    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    delivered = MessageEvent.objects.get(message=message, to_value=Delivery.DELIVERED)
    assert (delivered.source, delivered.detail["eventType"]) == (Source.WEBHOOK, "TEXT_SUCCESSFUL")
    refined = MessageEvent.objects.get(message=message, kind=EventKind.PROVIDER)
    assert (refined.to_value, refined.detail["isFinal"]) == ("TEXT_DELIVERED", True)
    assert set(fakes.sns.answers) == {200}

    assert services.confirm(message) is True
    assert fakes.aws_sms.feedback[message.provider_message_id] == ["RECEIVED"]


def test_an_aws_event_published_before_the_send_committed_is_delivered_again_by_sns(fakes):
    fakes.aws_sms.delays = (0.0, 0.1)
    with transaction.atomic():
        message = services.send(provider="aws_sms", to=NUMBERS["GB"], body="Your code is 1234")
        # The events reach the webhook while the row is not committed.
        wait_for(lambda: 503 in fakes.sns.answers)

    # Each of the two notifications is answered 200 once SNS delivers it again.
    wait_for(lambda: fakes.sns.answers.count(200) == 2)
    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (
        Delivery.DELIVERED,
        "TEXT_DELIVERED",
    )


def test_a_pending_chime_message_settles_through_polling(fakes):
    fakes.chime.pending_rate = 1.0
    fakes.chime.denied_rate = fakes.chime.failed_rate = 0.0
    message = services.send(provider="chime", to=CHANNEL, channel="chat", body="Code 1234")
    assert (message.delivery_status, message.provider_status) == (Delivery.QUEUED, "PENDING")

    wait_for(lambda: fakes.chime.messages[message.provider_message_id].status == "SENT")
    assert polling.poll_open_statuses() == 1

    message.refresh_from_db()
    assert message.delivery_status == Delivery.DELIVERED
    assert MessageEvent.objects.filter(message=message, source=Source.POLL).exists()


def test_a_pending_chime_message_its_flow_denies_ends_rejected(fakes):
    fakes.chime.pending_rate = fakes.chime.denied_rate = 1.0
    message = services.send(provider="chime", to=CHANNEL, channel="chat", body="Code 1234")

    wait_for(lambda: message.provider_message_id not in fakes.chime.messages)
    assert polling.poll_open_statuses() == 1

    message.refresh_from_db()
    assert (message.delivery_status, message.provider_status) == (Delivery.REJECTED, "NOT_FOUND")


def test_chime_send_is_delivered_and_confirmed_locally(fakes):
    message = services.send(provider="chime", to=CHANNEL, channel="chat", body="Code 1234")
    assert message.delivery_status == Delivery.DELIVERED
    assert services.confirm(message) is True
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED
    assert not message.calls.exists()


def test_requests_no_fake_serves_get_404():
    import urllib.error
    import urllib.request

    with FakeServer(ProviderFakes()) as server, pytest.raises(urllib.error.HTTPError) as excinfo:
        urllib.request.urlopen(f"{server.url}/elsewhere", timeout=5)  # noqa: S310
    assert excinfo.value.code == 404


def test_feedback_fakes_refuses_a_bad_port():
    with pytest.raises(CommandError, match="--port"):
        call_command("feedback_fakes", port=70000)


@pytest.fixture
def mounted(settings, live_server):
    """``ProviderFakes`` with the providers served under ``/<key>/``, configured as the example
    project configures them, their carriers fast and every number reachable."""
    app = ProviderFakes()
    for carrier in app.mounted.values():
        carrier.delays = (0.05, 0.1)
        carrier.undelivered_rate = 0.0
    with FakeServer(app) as server:
        settings.FEEDBACK_APP = {
            **settings.FEEDBACK_APP,
            "PUBLIC_URL": live_server.url,
            "PROVIDERS": mounted_provider_settings(server.url),
        }
        yield app


@pytest.mark.parametrize("key", sorted(ProviderFakes().mounted))
def test_each_mounted_provider_delivers_and_reports_through_the_shared_port(mounted, key):
    message = services.send(provider=key, to=NUMBERS["US"], body="Your code is 482913")
    # The carrier calls the provider's webhook under PUBLIC_URL, authenticated as the vendor does.
    wait_for(lambda: Message.objects.get(pk=message.pk).delivery_status == Delivery.DELIVERED)
    assert services.confirm(message) is True
    call = ProviderCall.objects.get(message=message)
    assert (call.payload["outcome"], call.state) == ("confirmed", CallState.SUCCEEDED)
