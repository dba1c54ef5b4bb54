"""The whole path through the real SDKs against ``feedback_fakes``: send, status callback,
confirm, report; what ``make demo`` runs."""

import time

import pytest
from django.core.management import CommandError, call_command

from feedback_app import services
from feedback_app.models import Message
from feedback_app.states import Delivery, Feedback
from feedback_app.testing import FakeServer
from feedback_app.testing.demo_fakes import ProviderFakes

from .factories import NUMBERS

pytestmark = pytest.mark.django_db(transaction=True)

CHANNEL = "arn:aws:chime:us-east-1:111122223333:app-instance/demo/channel/otp"
BOT = "arn:aws:chime:us-east-1:111122223333:app-instance/demo/user/bot"


@pytest.fixture
def fakes(settings, live_server):
    app = ProviderFakes()
    app.twilio.delays = (0.05, 0.1)
    app.twilio.undelivered_rate = 0.0
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
                "aws_sms": {**aws, "ENDPOINT_URL": server.url, "CONFIGURATION_SET": "demo"},
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


def test_aws_sms_send_and_confirm_report_received(fakes):
    message = services.send(provider="aws_sms", to=NUMBERS["GB"], body="Your code is 1234")
    assert services.confirm(message) is True
    assert fakes.aws_sms.feedback[message.provider_message_id] == ["RECEIVED"]


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
