"""django-two-factor-auth: its SMS tokens go through feedback_app, and a verified token confirms
the message that carried it (``feedback_app.integrations.two_factor``)."""

import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured
from django.urls import reverse
from django_otp.plugins.otp_static.models import StaticDevice
from two_factor.plugins.phonenumber.models import PhoneDevice

from feedback_app.integrations.two_factor.gateway import (
    DEVICE_KEY,
    Gateway,
    confirm_device,
    latest_message,
)
from feedback_app.models import Message
from feedback_app.providers import locmem
from feedback_app.providers.base import PermanentError, RetryableError
from feedback_app.states import Feedback
from tests.factories import NUMBERS

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def gateway_settings(settings):
    # Through the same ``settings`` fixture the tests use: an override_settings around it would
    # be undone out of order when a test changes FEEDBACK_APP, and leak into later test files.
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "TWO_FACTOR": {"PROVIDER": "locmem"}}
    settings.TWO_FACTOR_SMS_GATEWAY = "feedback_app.integrations.two_factor.gateway.Gateway"


def make_device(username: str, number: str = NUMBERS["US"]) -> PhoneDevice:
    user = get_user_model().objects.create_user(username, password=PASSWORD)
    return PhoneDevice.objects.create(user=user, name="default", method="sms", number=number)


def sent_token() -> str:
    return re.search(r"\d{6}", locmem.outbox[-1]["body"])[0]


def log_in(client, username: str, step: str = "token", token: str | None = None):
    """Password, then a token at ``step`` (``token``: the texted one; ``backup``)."""
    url = reverse("two_factor:login")
    response = client.post(
        url,
        {"login_view-current_step": "auth", "auth-username": username, "auth-password": PASSWORD},
    )
    assert response.status_code == 200  # the token step
    return client.post(
        url, {"login_view-current_step": step, f"{step}-otp_token": token or sent_token()}
    )


def test_the_gateway_sends_through_the_provider_and_remembers_the_device():
    device = make_device("ada")
    message = Gateway().send_sms(device=device, token="493817")
    assert locmem.outbox[-1]["body"] == "Your verification code is 493817"
    assert locmem.outbox[-1]["to"] == NUMBERS["US"]
    assert message.purpose == "2fa" and message.metadata == {DEVICE_KEY: device.persistent_id}
    assert "493817" not in str(Message.objects.values_list())  # the token is not stored
    assert latest_message(device) == message


def test_logging_in_with_the_texted_token_confirms_its_message(
    client, django_capture_on_commit_callbacks
):
    make_device("ada")
    with django_capture_on_commit_callbacks(execute=True):
        response = log_in(client, "ada")
    assert response.status_code == 302
    assert client.get(reverse("protected")).status_code == 200
    message = Message.objects.get()
    assert message.feedback == Feedback.CONFIRMED
    assert message.events.get(to_value=Feedback.CONFIRMED).actor == "ada"
    # Reported to the provider through the outbox, as any confirmation is.
    assert [report["outcome"] for report in locmem.reports] == ["confirmed"]


def remember_this_browser(client, username: str) -> dict[str, str]:
    """Log in with the texted token and "don't ask again"; the remember cookies, logged out."""
    response = client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "auth", "auth-username": username, "auth-password": PASSWORD},
    )
    assert response.status_code == 200
    response = client.post(
        reverse("two_factor:login"),
        {
            "login_view-current_step": "token",
            "token-otp_token": sent_token(),
            "token-remember": "on",
        },
    )
    assert response.status_code == 302
    cookies = {k: v.value for k, v in client.cookies.items() if k.startswith("remember-cookie_")}
    assert cookies
    client.logout()
    return cookies


def test_a_remembered_browser_logs_in_without_a_token_and_confirms_nothing(
    client, settings, django_capture_on_commit_callbacks
):
    settings.TWO_FACTOR_REMEMBER_COOKIE_AGE = 3600
    device = make_device("ada")
    cookies = remember_this_browser(client, "ada")
    for name, value in cookies.items():
        client.cookies[name] = value
    # A code texted meanwhile (a login started elsewhere) that nobody types.
    untyped = Gateway().send_sms(device=device, token="999999")
    sent = len(locmem.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("two_factor:login"),
            {"login_view-current_step": "auth", "auth-username": "ada", "auth-password": PASSWORD},
        )
    # Logged in by the password alone: two_factor sent user_verified, without a token.
    assert response.status_code == 302
    assert client.get(reverse("protected")).status_code == 200
    assert len(locmem.outbox) == sent  # no code was asked for
    untyped.refresh_from_db()
    assert untyped.feedback == Feedback.PENDING
    assert not untyped.events.filter(to_value=Feedback.CONFIRMED).exists()


def test_with_remembering_on_a_typed_token_still_confirms_its_message(
    client, settings, django_capture_on_commit_callbacks
):
    settings.TWO_FACTOR_REMEMBER_COOKIE_AGE = 3600
    make_device("ada")
    with django_capture_on_commit_callbacks(execute=True):
        remember_this_browser(client, "ada")
    message = Message.objects.get()
    assert message.feedback == Feedback.CONFIRMED
    assert [report["outcome"] for report in locmem.reports] == ["confirmed"]


def test_user_verified_without_a_token_step_post_confirms_nothing(rf):
    """The receiver itself: only the token step's POST with a token confirms."""
    from two_factor.signals import user_verified

    device = make_device("ada")
    message = Gateway().send_sms(device=device, token="123456")
    requests = [
        rf.get("/account/login/"),
        rf.post("/account/login/", {"login_view-current_step": "auth", "auth-username": "ada"}),
        rf.post("/account/login/", {"login_view-current_step": "token", "token-otp_token": ""}),
        # A token field smuggled into the password step's POST is not the token step.
        rf.post(
            "/account/login/",
            {"login_view-current_step": "auth", "token-otp_token": "123456"},
        ),
    ]
    for request in [None, *requests]:
        user_verified.send(sender=__name__, request=request, user=device.user, device=device)
        message.refresh_from_db()
        assert message.feedback == Feedback.PENDING
    token_step = rf.post(
        "/account/login/", {"login_view-current_step": "token", "token-otp_token": "123456"}
    )
    user_verified.send(sender=__name__, request=token_step, user=device.user, device=device)
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED


def test_a_wrong_token_confirms_nothing(client):
    make_device("ada")
    client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "auth", "auth-username": "ada", "auth-password": PASSWORD},
    )
    wrong = f"{(int(sent_token()) + 1) % 10**6:06d}"
    response = client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "token", "token-otp_token": wrong},
    )
    assert response.status_code == 200  # the token step again, with an error
    assert Message.objects.get().feedback == Feedback.PENDING


def test_logging_in_with_a_backup_token_leaves_the_text_message_unconfirmed(client):
    device = make_device("ada")
    static = StaticDevice.objects.create(user=device.user, name="backup")
    static.token_set.create(token="backup01")
    response = log_in(client, "ada", step="backup", token="backup01")
    assert response.status_code == 302
    assert client.get(reverse("protected")).status_code == 200
    assert Message.objects.get().feedback == Feedback.PENDING


def test_confirm_device_for_a_hand_written_view_confirms_that_device_only():
    ada, bob = make_device("ada"), make_device("bob")  # one shared phone number
    first = Gateway().send_sms(device=ada, token="111111")
    latest = Gateway().send_sms(device=ada, token="222222")
    bobs = Gateway().send_sms(device=bob, token="333333")
    assert confirm_device(ada) is True
    assert confirm_device(ada) is False  # confirming twice is a no-op
    states = dict(Message.objects.values_list("pk", "feedback"))
    assert states[latest.pk] == Feedback.CONFIRMED
    # The first code was resent: one verification, converted by the latest message.
    assert states[first.pk] == Feedback.SUPERSEDED
    assert states[bobs.pk] == Feedback.PENDING


def test_a_code_sent_while_the_last_one_is_pending_is_a_resend_of_that_attempt():
    device = make_device("ada")
    first = Gateway().send_sms(device=device, token="111111")
    resend = Gateway().send_sms(device=device, token="222222")
    assert resend.verification_id == first.verification_id is not None
    assert (first.resend, resend.resend) == (False, True)
    confirm_device(device)
    # The next login is a new attempt.
    later = Gateway().send_sms(device=device, token="333333")
    assert later.verification_id != first.verification_id and not later.resend


# -- a provider that cannot send -------------------------------------------------------------


def start_login(client, username: str):
    """The password step; answers the token step (the code is sent while it renders)."""
    return client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "auth", "auth-username": username, "auth-password": PASSWORD},
    )


@pytest.mark.parametrize(
    "error",
    [
        RetryableError("service unavailable", code=503),
        PermanentError("The 'To' number +12015550123 is not a valid phone number.", code=21211),
    ],
    ids=["outage", "refused"],
)
def test_a_provider_that_cannot_send_is_logged_and_the_login_page_shows_the_token_step(
    client, caplog, error
):
    make_device("ada")
    locmem.fail_next(error=error)
    with caplog.at_level(logging.ERROR, logger="feedback_app"):
        response = start_login(client, "ada")

    assert response.status_code == 200  # not a 500
    assert 'name="token-otp_token"' in response.text
    assert not Message.objects.exists() and not locmem.outbox
    (record,) = [r for r in caplog.records if r.name.startswith("feedback_app.integrations")]
    assert record.levelno == logging.ERROR and record.exc_info is None
    assert f"[{error.code}]" in record.getMessage() and "'locmem'" in record.getMessage()
    assert "+12015550123" not in caplog.text  # the provider's text, its number masked
    # The token step says so, instead of "We sent you a text message".
    assert "The text message could not be sent. Try again later" in response.text
    assert "We sent you a text message" not in response.text

    # What the user types anyway gets the token form's usual error.
    response = client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "token", "token-otp_token": "123456"},
    )
    assert response.status_code == 200
    assert "Invalid token" in response.text
    assert client.get(reverse("protected")).status_code != 200


def test_after_an_outage_logging_in_again_sends_a_code_that_works(
    client, django_capture_on_commit_callbacks
):
    make_device("ada")
    locmem.fail_next()
    assert start_login(client, "ada").status_code == 200
    client.cookies.clear()  # a new login attempt
    with django_capture_on_commit_callbacks(execute=True):
        response = log_in(client, "ada")
    assert response.status_code == 302
    assert Message.objects.get().feedback == Feedback.CONFIRMED


def test_a_backup_token_still_logs_in_when_no_code_could_be_sent(client):
    device = make_device("ada")
    StaticDevice.objects.create(user=device.user, name="backup").token_set.create(token="bk01")
    locmem.fail_next()
    assert start_login(client, "ada").status_code == 200
    response = client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "backup", "backup-otp_token": "bk01"},
    )
    assert response.status_code == 302
    assert client.get(reverse("protected")).status_code == 200


def test_without_a_provider_the_gateway_refuses_and_sends_nothing(settings):
    device = make_device("ada")
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "TWO_FACTOR": {"PURPOSE": "login"}}
    with pytest.raises(ImproperlyConfigured, match=r"TWO_FACTOR'\]\['PROVIDER'\]"):
        Gateway().send_sms(device=device, token="123456")
    assert not locmem.outbox and not Message.objects.exists()


def test_a_send_the_guard_refuses_is_logged_with_its_code_and_the_login_page_shows(client, caplog):
    from feedback_app import blocks

    make_device("ada")
    blocks.block("prefix", "+120", reason="pumping")
    with caplog.at_level(logging.WARNING, logger="feedback_app"):
        response = start_login(client, "ada")
    assert response.status_code == 200
    assert 'name="token-otp_token"' in response.text
    assert not Message.objects.exists() and not locmem.outbox
    (record,) = [r for r in caplog.records if r.name.startswith("feedback_app.integrations")]
    assert record.levelno == logging.WARNING
    assert "prefix_blocked" in record.getMessage()
    assert "+12015550123" not in caplog.text
    assert "Text messages cannot be sent to this number at the moment" in response.text
    assert "We sent you a text message" not in response.text


def test_a_code_over_the_recipient_limit_says_when_to_try_again(client, settings, window_start):
    make_device("ada")
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "GUARD": {"RECIPIENT_LIMIT": [1, 600]}}
    assert "We sent you a text message" in start_login(client, "ada").text
    client.cookies.clear()  # a second login attempt, over the limit
    response = start_login(client, "ada")
    assert response.status_code == 200
    assert Message.objects.count() == 1 and len(locmem.outbox) == 1
    assert "Too many codes were requested for this number. Try again in " in response.text
    assert "We sent you a text message" not in response.text


def test_a_code_that_was_sent_is_announced_as_two_factor_does(client):
    make_device("ada")
    response = start_login(client, "ada")
    assert "We sent you a text message" in response.text
    assert "errornote" not in response.text
