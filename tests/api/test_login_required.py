"""Under Django's ``LoginRequiredMiddleware`` what providers and recipients reach without logging
in stays reachable: the confirmation link confirms, and the REST API refuses anonymous calls with
its own JSON answers, exactly as without the middleware. The webhooks' own tests run under it too
(tests/webhooks)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from feedback_app.models import Message
from feedback_app.states import Feedback
from feedback_app.tokens import confirmation_token

from ..factories import make_message
from .conftest import API

pytestmark = pytest.mark.django_db

LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"


@pytest.fixture
def login_required(settings) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED]


def views(patterns: list[URLPattern | URLResolver], prefix: str = "") -> list[tuple[str, Any]]:
    """(route, view) of every URL pattern, included ones too."""
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += views(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            found.append((prefix + str(pattern.pattern), pattern.callback))
    return found


def test_every_view_of_the_app_is_public_to_the_middleware():
    """Webhooks, the link and the API each authenticate their callers themselves."""
    routes = views(get_resolver("feedback_app.urls").url_patterns)
    assert {"webhooks/sns/", "webhooks/twilio/", "c/<str:token>/", "api/stats/"} <= {
        route for route, _ in routes
    }
    assert [route for route, view in routes if getattr(view, "login_required", True)] == []


def test_the_middleware_is_on_for_the_hosts_own_views(client, login_required):
    response = client.get(reverse("protected"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("two_factor:login") + "?next=")


# -- the confirmation link --------------------------------------------------------------------


def test_the_link_confirms_without_logging_in(client, login_required, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "CONFIRM_REDIRECT_URL": "/welcome/"}
    message = make_message()
    response = client.get(f"/feedback/c/{confirmation_token(message)}/")
    assert response.status_code == 302
    assert response["Location"] == "/welcome/"
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED


@pytest.mark.parametrize("case", ["bad", "expired"])
def test_a_bad_link_is_answered_by_the_link_view_not_sent_to_the_login_page(
    client, login_required, case
):
    sent_at = timezone.now() - timedelta(minutes=11) if case == "expired" else timezone.now()
    message = make_message(sent_at=sent_at)
    token = confirmation_token(message) + ("x" if case == "bad" else "")
    response = client.get(f"/feedback/c/{token}/")
    assert response.status_code == 400
    assert "Location" not in response
    assert response["Cache-Control"] == "no-store"
    assert Message.objects.get(pk=message.pk).feedback == Feedback.PENDING


def test_the_token_never_reaches_a_login_url(client, login_required, settings):
    settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "CONFIRM_INVALID_URL": "two_factor:login"}
    message = make_message(sent_at=timezone.now() - timedelta(minutes=11))
    token = confirmation_token(message)
    response = client.get(f"/feedback/c/{token}/")
    # Sent to the login page because the project asked for it, without the token in next=.
    assert response.status_code == 302
    assert response["Location"] == reverse("two_factor:login")
    assert token not in response["Location"] and "next=" not in response["Location"]


@pytest.mark.parametrize(
    "case",
    ["confirmed", "bad", "expired", "deleted", "throttled", "invalid-url", "confirmed-again"],
)
def test_every_answer_of_the_link_is_kept_out_of_caches_and_referers(
    client, login_required, settings, case
):
    """Each answer's URL held a token: no cache keeps it, no next page's Referer carries it."""
    if case == "invalid-url":
        settings.FEEDBACK_APP = {**settings.FEEDBACK_APP, "CONFIRM_INVALID_URL": "/oops/"}
    if case == "throttled":
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"feedback_app.confirm": "1/minute"},
        }
    old = case in ("expired", "invalid-url")
    message = make_message(sent_at=timezone.now() - timedelta(minutes=11 if old else 0))
    token = confirmation_token(message) + ("x" if case == "bad" else "")
    if case == "deleted":
        message.delete()
    if case in ("throttled", "confirmed-again"):
        client.get(f"/feedback/c/{token}/")
    response = client.get(f"/feedback/c/{token}/")
    expected = {
        "confirmed": 302,
        "bad": 400,
        "expired": 400,
        "deleted": 404,
        "throttled": 429,
        "invalid-url": 302,
        "confirmed-again": 302,
    }
    assert response.status_code == expected[case]
    assert response["Cache-Control"] == "no-store"
    assert response["Referrer-Policy"] == "no-referrer"


# -- the REST API ---------------------------------------------------------------------------------


def anonymous_calls(message: Message) -> list[tuple[str, str, dict[str, Any] | None]]:
    return [
        ("get", f"{API}/messages/", None),
        ("get", f"{API}/messages/{message.pk}/", None),
        (
            "post",
            f"{API}/messages/",
            {"provider": "locmem", "provider_message_id": "x", "to": "+1"},
        ),
        ("post", f"{API}/messages/send/", {"provider": "locmem", "to": "+1", "body": "hi"}),
        ("post", f"{API}/messages/{message.pk}/confirm/", {}),
        ("post", f"{API}/messages/{message.pk}/fail/", {}),
        ("post", f"{API}/messages/confirm/", {"provider": "locmem", "provider_message_id": "x"}),
        ("get", f"{API}/stats/", None),
        ("get", f"{API}/schema/", None),
        ("get", f"{API}/no-such-endpoint/", None),
        ("post", f"{API}/confirm/not-a-token/", None),
    ]


def answer(response: Any) -> tuple[int, str, bytes, str | None]:
    return (
        response.status_code,
        response["Content-Type"],
        response.content,
        response.get("WWW-Authenticate"),
    )


def test_the_api_refuses_anonymous_calls_as_it_does_without_the_middleware(
    anonymous, settings, message
):
    calls = anonymous_calls(message)
    before = [answer(getattr(anonymous, method)(url, data)) for method, url, data in calls]
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED]
    after = [answer(getattr(anonymous, method)(url, data)) for method, url, data in calls]

    assert after == before
    statuses = {url: status for (_, url, _), (status, *_) in zip(calls, after, strict=True)}
    assert statuses[f"{API}/messages/"] == 401  # the API's own refusal, not a login redirect
    assert all(status != 302 for status in statuses.values())
    assert not Message.objects.exclude(pk=message.pk).exists()
    Message.objects.get(pk=message.pk, feedback=Feedback.PENDING)


def test_a_token_confirms_through_the_api_without_logging_in(anonymous, login_required, message):
    response = anonymous.post(f"{API}/confirm/{confirmation_token(message)}/")
    assert response.status_code == 200
    message.refresh_from_db()
    assert message.feedback == Feedback.CONFIRMED
