"""The example project as `make demo` serves it: the admin URL it prints leads to a login page
that takes the demo credentials and ends in the admin; that login page and two-factor's other
pages have the admin's look and load nothing from another site; the locmem outbox, which shows
every two-factor code, is for staff only and only with DEBUG; DEBUG is off unless asked for."""

import os
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

import feedback_app
from tests.factories import NUMBERS

pytestmark = pytest.mark.django_db


def test_the_admin_url_leads_to_a_login_that_ends_in_the_admin(client):
    get_user_model().objects.create_superuser("demo", "demo@example.com", "demo")

    page = client.get("/admin/", follow=True)
    assert page.status_code == 200
    login_url, _ = page.redirect_chain[-1]
    assert login_url.startswith("/account/login/")

    done = client.post(
        login_url,
        {"login_view-current_step": "auth", "auth-username": "demo", "auth-password": "demo"},
        follow=True,
    )
    assert done.status_code == 200
    assert done.redirect_chain[-1][0] == "/admin/"
    assert done.context["user"].is_superuser


class _Addresses(HTMLParser):
    """Every URL a page refers to: src, href, action and srcset attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "action", "srcset") and value is not None:
                self.urls.append(value)


def addresses(html: str) -> list[str]:
    parser = _Addresses()
    parser.feed(html)
    return parser.urls


def assert_self_contained(html: str) -> None:
    """Nothing loaded or linked from another site (a CDN would not load offline); the admin's
    stylesheets instead of two_factor's placeholder page."""
    urls = addresses(html)
    # A scheme ("https:") or a network location ("//cdnjs...") means another site.
    elsewhere = [url for url in urls if urlsplit(url).scheme or urlsplit(url).netloc]
    assert elsewhere == []
    assert "/static/admin/css/base.css" in urls
    assert "Provide a template" not in html
    assert "bootstrap" not in html.lower() and "jquery" not in html.lower()


def test_the_two_factor_login_page_has_the_admins_look_and_no_cdn(client):
    page = client.get(reverse("two_factor:login"))
    assert page.status_code == 200
    html = page.text
    assert_self_contained(html)
    assert "/static/admin/css/login.css" in addresses(html)
    assert 'id="id_auth-username"' in html and 'id="id_auth-password"' in html
    assert 'class="submit-row"' in html


def test_a_wrong_password_shows_the_error_in_the_admins_error_note(client):
    get_user_model().objects.create_user("ada", password="right")
    page = client.post(
        reverse("two_factor:login"),
        {"login_view-current_step": "auth", "auth-username": "ada", "auth-password": "wrong"},
    )
    assert page.status_code == 200
    assert 'class="errornote"' in page.text
    assert_self_contained(page.text)


@pytest.mark.parametrize("name", ["two_factor:setup", "two_factor:profile"])
def test_the_other_two_factor_pages_have_the_admins_look_and_no_cdn(client, name):
    client.force_login(get_user_model().objects.create_user("ada", password="pw"))
    page = client.get(reverse(name))
    assert page.status_code == 200
    assert_self_contained(page.text)


@pytest.fixture
def code_sent():
    feedback_app.send(provider="locmem", to=NUMBERS["US"], body="Your verification code is 493817")


def test_the_locmem_outbox_shows_staff_the_codes_while_debugging(client, settings, code_sent):
    settings.DEBUG = True
    client.force_login(get_user_model().objects.create_user("staff", is_staff=True))
    page = client.get("/locmem-outbox/")
    assert page.status_code == 200
    assert f"{NUMBERS['US']}: Your verification code is 493817" in page.text


def test_the_locmem_outbox_sends_anonymous_users_to_the_login_page(client, settings, code_sent):
    settings.DEBUG = True
    page = client.get("/locmem-outbox/")
    assert page.status_code == 302
    assert page["Location"] == f"{reverse('two_factor:login')}?next=/locmem-outbox/"


def test_the_locmem_outbox_refuses_users_who_are_not_staff(client, settings, code_sent):
    settings.DEBUG = True
    client.force_login(get_user_model().objects.create_user("ada"))
    page = client.get("/locmem-outbox/")
    assert page.status_code == 403
    assert "493817" not in page.text


def test_without_debug_the_locmem_outbox_does_not_exist_even_for_staff(client, code_sent):
    client.force_login(get_user_model().objects.create_superuser("demo", password="demo"))
    page = client.get("/locmem-outbox/")
    assert page.status_code == 404
    assert "493817" not in page.text


def _example_settings(code: str, **environ: str) -> str:
    """Output of ``code`` run against example_project.settings in a fresh interpreter, with
    ``environ`` (and no DEBUG or FEEDBACK_FAKES_URL) as the environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "FEEDBACK_FAKES_URL")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    shown = subprocess.run(  # noqa: S603 - this interpreter, this repository's settings
        [sys.executable, "-c", code],
        env={**env, **environ},
        capture_output=True,
        text=True,
        check=True,
    )
    return shown.stdout.strip()


@pytest.mark.parametrize(
    ("environ", "debug"), [({}, False), ({"DEBUG": "0"}, False), ({"DEBUG": "1"}, True)]
)
def test_debug_is_off_unless_asked_for(environ, debug):
    code = "from example_project import settings; print(settings.DEBUG)"
    assert _example_settings(code, **environ) == str(debug)


FAKES = "http://127.0.0.1:8866"
CERTIFICATES = (
    "from example_project import settings; "
    "print(settings.FEEDBACK_APP['PROVIDERS']['aws_sms']['SNS_DEV_CERTIFICATE_URLS'])"
)


def test_with_the_fakes_and_debug_the_aws_webhook_trusts_the_fakes_certificate():
    """What `make demo` runs with: the SNS notifications of the fakes are accepted."""
    shown = _example_settings(CERTIFICATES, DEBUG="1", FEEDBACK_FAKES_URL=FAKES)
    assert shown == f"['{FAKES}/sns/']"


def test_with_the_fakes_and_without_debug_the_project_still_passes_its_checks():
    """No development certificate without DEBUG, which feedback_app.E105 would refuse."""
    assert _example_settings(CERTIFICATES, FEEDBACK_FAKES_URL=FAKES) == "[]"
    check = (
        "from django.core.management import execute_from_command_line; "
        "execute_from_command_line(['manage.py', 'check'])"
    )
    # Exits 1 (check=True raises) on any error.
    _example_settings(
        check, DJANGO_SETTINGS_MODULE="example_project.settings", FEEDBACK_FAKES_URL=FAKES
    )
